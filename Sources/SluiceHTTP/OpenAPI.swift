/// The OpenAPI 3 document of the HTTP API, served at `/openapi.json`. `OpenAPITests` keeps
/// its paths and methods equal to the router's.
enum OpenAPIDocument {
  static let text = #"""
    {
     "openapi": "3.0.3",
     "info": {
      "title": "Sluice HTTP API",
      "version": "1",
      "description": "Confluent REST Proxy v2 (topics, partitions, produce, consumer instances), Server-Sent Events, webhooks, Prometheus metrics. See docs/http.md."
     },
     "paths": {
      "/": {
       "get": {
        "summary": "Liveness: an empty object.",
        "operationId": "root",
        "parameters": [
         {
          "name": "Accept",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "application/vnd.kafka.v2+json (or application/json, */*)."
         }
        ],
        "responses": {
         "200": {
          "description": "OK",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "type": "object",
             "maxProperties": 0
            }
           }
          }
         },
         "406": {
          "description": "The Accept header admits no type this answer has.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/brokers": {
       "get": {
        "summary": "Broker ids.",
        "operationId": "listBrokers",
        "parameters": [
         {
          "name": "Accept",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "application/vnd.kafka.v2+json (or application/json, */*)."
         }
        ],
        "responses": {
         "200": {
          "description": "OK",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "type": "object",
             "required": [
              "brokers"
             ],
             "properties": {
              "brokers": {
               "type": "array",
               "items": {
                "type": "integer"
               }
              }
             }
            }
           }
          }
         },
         "406": {
          "description": "The Accept header admits no type this answer has.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/topics": {
       "get": {
        "summary": "Topic names.",
        "operationId": "listTopics",
        "parameters": [
         {
          "name": "Accept",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "application/vnd.kafka.v2+json (or application/json, */*)."
         }
        ],
        "responses": {
         "200": {
          "description": "OK",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "type": "array",
             "items": {
              "type": "string"
             }
            }
           }
          }
         },
         "406": {
          "description": "The Accept header admits no type this answer has.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/topics/{topic}": {
       "get": {
        "summary": "A topic: its configs (every one, defaults included) and partitions.",
        "operationId": "describeTopic",
        "parameters": [
         {
          "name": "topic",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Topic name."
         },
         {
          "name": "Accept",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "application/vnd.kafka.v2+json (or application/json, */*)."
         }
        ],
        "responses": {
         "200": {
          "description": "OK",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Topic"
            }
           }
          }
         },
         "404": {
          "description": "40401 topic not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "406": {
          "description": "The Accept header admits no type this answer has.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       },
       "post": {
        "summary": "Produce records; partitions chosen by the record's partition, else murmur2 of its key, else one partition per request in turn.",
        "operationId": "produce",
        "parameters": [
         {
          "name": "topic",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Topic name."
         },
         {
          "name": "Accept",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "application/vnd.kafka.v2+json (or application/json, */*)."
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/vnd.kafka.json.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/ProduceRequestJson"
           }
          },
          "application/vnd.kafka.binary.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/ProduceRequestBinary"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "Records stored or refused, one offsets entry each in request order (failures carry error_code 50002 or 50003).",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/ProduceResponse"
            }
           }
          }
         },
         "400": {
          "description": "Malformed JSON, or a binary key or value that is not a base64 string.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40401 topic not found (when auto.create.topics.enable is false or the name is invalid); 40402 partition not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "406": {
          "description": "Not acceptable.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "413": {
          "description": "The body is larger than the server's limit.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Content-Type is not application/vnd.kafka.json.v2+json or application/vnd.kafka.binary.v2+json.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "Unrecognized field, empty records, or a record that is not an object or has a bad partition.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/topics/{topic}/partitions": {
       "get": {
        "summary": "A topic's partitions.",
        "operationId": "listPartitions",
        "parameters": [
         {
          "name": "topic",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Topic name."
         },
         {
          "name": "Accept",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "application/vnd.kafka.v2+json (or application/json, */*)."
         }
        ],
        "responses": {
         "200": {
          "description": "OK",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "type": "array",
             "items": {
              "$ref": "#/components/schemas/Partition"
             }
            }
           }
          }
         },
         "404": {
          "description": "40401 topic not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "406": {
          "description": "The Accept header admits no type this answer has.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/topics/{topic}/partitions/{partition}": {
       "get": {
        "summary": "One partition.",
        "operationId": "describePartition",
        "parameters": [
         {
          "name": "topic",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Topic name."
         },
         {
          "name": "partition",
          "in": "path",
          "required": true,
          "schema": {
           "type": "integer",
           "format": "int32",
           "minimum": 0
          },
          "description": "Partition index."
         },
         {
          "name": "Accept",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "application/vnd.kafka.v2+json (or application/json, */*)."
         }
        ],
        "responses": {
         "200": {
          "description": "OK",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Partition"
            }
           }
          }
         },
         "404": {
          "description": "40401 topic or 40402 partition not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "406": {
          "description": "The Accept header admits no type this answer has.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       },
       "post": {
        "summary": "Produce records to one partition (a record's own partition field overrides it).",
        "operationId": "produceToPartition",
        "parameters": [
         {
          "name": "topic",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Topic name."
         },
         {
          "name": "partition",
          "in": "path",
          "required": true,
          "schema": {
           "type": "integer",
           "format": "int32",
           "minimum": 0
          },
          "description": "Partition index."
         },
         {
          "name": "Accept",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "application/vnd.kafka.v2+json (or application/json, */*)."
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/vnd.kafka.json.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/ProduceRequestJson"
           }
          },
          "application/vnd.kafka.binary.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/ProduceRequestBinary"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "Records stored or refused, one offsets entry each in request order (failures carry error_code 50002 or 50003).",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/ProduceResponse"
            }
           }
          }
         },
         "400": {
          "description": "Malformed JSON, or a binary key or value that is not a base64 string.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40401 topic not found (when auto.create.topics.enable is false or the name is invalid); 40402 partition not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "406": {
          "description": "Not acceptable.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "413": {
          "description": "The body is larger than the server's limit.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Content-Type is not application/vnd.kafka.json.v2+json or application/vnd.kafka.binary.v2+json.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "Unrecognized field, empty records, or a record that is not an object or has a bad partition.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/topics/{topic}/partitions/{partition}/offsets": {
       "get": {
        "summary": "The partition's first offset and its end (the high watermark).",
        "operationId": "partitionOffsets",
        "parameters": [
         {
          "name": "topic",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Topic name."
         },
         {
          "name": "partition",
          "in": "path",
          "required": true,
          "schema": {
           "type": "integer",
           "format": "int32",
           "minimum": 0
          },
          "description": "Partition index."
         },
         {
          "name": "Accept",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "application/vnd.kafka.v2+json (or application/json, */*)."
         }
        ],
        "responses": {
         "200": {
          "description": "OK",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "type": "object",
             "required": [
              "beginning_offset",
              "end_offset"
             ],
             "properties": {
              "beginning_offset": {
               "type": "integer"
              },
              "end_offset": {
               "type": "integer"
              }
             }
            }
           }
          }
         },
         "404": {
          "description": "40401 topic or 40402 partition not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "406": {
          "description": "The Accept header admits no type this answer has.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/v1/topics/{topic}/events": {
       "get": {
        "summary": "Server-Sent Events: each record as it is appended (id PARTITION:OFFSET, data a record object; see docs/http.md).",
        "operationId": "streamEvents",
        "parameters": [
         {
          "name": "topic",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Topic name."
         },
         {
          "name": "from",
          "in": "query",
          "required": false,
          "schema": {
           "type": "string",
           "pattern": "^(beginning|end|@[0-9]+)$",
           "default": "end"
          },
          "description": "Where to start without a resume id or committed offset: beginning, end, or @EPOCH_MS."
         },
         {
          "name": "group",
          "in": "query",
          "required": false,
          "schema": {
           "type": "string",
           "minLength": 1,
           "maxLength": 249
          },
          "description": "Start from this group's committed offsets and commit what was sent (about once a second)."
         },
         {
          "name": "partition",
          "in": "query",
          "required": false,
          "schema": {
           "type": "integer",
           "format": "int32",
           "minimum": 0
          },
          "description": "Stream one partition only."
         },
         {
          "name": "last_event_id",
          "in": "query",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "As the Last-Event-ID header, for clients that cannot set it."
         },
         {
          "name": "Last-Event-ID",
          "in": "header",
          "required": false,
          "schema": {
           "type": "string"
          },
          "description": "Resume after PARTITION:OFFSET, or after each of P:O,P:O,... (a stream checkpoint)."
         }
        ],
        "responses": {
         "200": {
          "description": "An endless text/event-stream.",
          "content": {
           "text/event-stream": {
            "schema": {
             "type": "string"
            }
           }
          }
         },
         "400": {
          "description": "A bad from, group or Last-Event-ID.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40401 topic or 40402 partition not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "406": {
          "description": "The Accept header does not admit text/event-stream.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/metrics": {
       "get": {
        "summary": "Prometheus metrics (text exposition format 0.0.4).",
        "operationId": "metrics",
        "responses": {
         "200": {
          "description": "Metrics.",
          "content": {
           "text/plain": {
            "schema": {
             "type": "string"
            }
           }
          }
         }
        }
       }
      },
      "/openapi.json": {
       "get": {
        "summary": "This document.",
        "operationId": "openapi",
        "responses": {
         "200": {
          "description": "OpenAPI 3 document.",
          "content": {
           "application/json": {
            "schema": {
             "type": "object"
            }
           }
          }
         }
        }
       }
      },
      "/consumers/{group}": {
       "post": {
        "summary": "Create a consumer instance: a member of the consumer group once it subscribes.",
        "operationId": "createConsumer",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         }
        ],
        "requestBody": {
         "required": false,
         "content": {
          "application/vnd.kafka.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/CreateConsumer"
           }
          },
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/CreateConsumer"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "The instance.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/ConsumerInstance"
            }
           }
          }
         },
         "400": {
          "description": "Malformed JSON.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "409": {
          "description": "40902 an instance of that name exists in the group.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Unsupported Content-Type.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "Unknown field, invalid format (422), fetch.min.bytes out of range (40001), invalid configuration (42204).",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "429": {
          "description": "42901 too many consumer instances (http.consumer.max.instances).",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/consumers/{group}/instances/{instance}": {
       "delete": {
        "summary": "Close the instance: it commits (with auto-commit) and leaves its group.",
        "operationId": "deleteConsumer",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "responses": {
         "204": {
          "description": "Closed."
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/consumers/{group}/instances/{instance}/subscription": {
       "post": {
        "summary": "Subscribe to topics or a pattern (replaces the subscription; joins the group).",
        "operationId": "subscribe",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "requestBody": {
         "required": false,
         "content": {
          "application/vnd.kafka.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/Subscription"
           }
          },
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/Subscription"
           }
          }
         }
        },
        "responses": {
         "400": {
          "description": "Malformed JSON.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Unsupported Content-Type.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "Unknown field or invalid entry.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "204": {
          "description": "Subscribed."
         },
         "409": {
          "description": "40903 the instance has manually assigned partitions.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       },
       "get": {
        "summary": "The topics subscribed to (a pattern's current matches).",
        "operationId": "subscription",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "responses": {
         "200": {
          "description": "Topics.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "type": "object",
             "properties": {
              "topics": {
               "type": "array",
               "items": {
                "type": "string"
               }
              }
             }
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       },
       "delete": {
        "summary": "Unsubscribe (leaves the group).",
        "operationId": "unsubscribe",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "responses": {
         "204": {
          "description": "Unsubscribed."
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/consumers/{group}/instances/{instance}/assignments": {
       "post": {
        "summary": "Assign partitions manually (no group membership).",
        "operationId": "assign",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "requestBody": {
         "required": false,
         "content": {
          "application/vnd.kafka.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/Partitions"
           }
          },
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/Partitions"
           }
          }
         }
        },
        "responses": {
         "400": {
          "description": "Malformed JSON.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Unsupported Content-Type.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "Unknown field or invalid entry.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "204": {
          "description": "Assigned."
         },
         "409": {
          "description": "40903 the instance subscribes to topics.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       },
       "get": {
        "summary": "The partitions assigned (by the group or manually).",
        "operationId": "assignments",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "responses": {
         "200": {
          "description": "Partitions.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Partitions"
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/consumers/{group}/instances/{instance}/offsets": {
       "post": {
        "summary": "Commit offsets: each entry's offset is the last record consumed (offset+1 is committed); with no body, every position.",
        "operationId": "commitOffsets",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "requestBody": {
         "required": false,
         "content": {
          "application/vnd.kafka.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/CommitOffsets"
           }
          },
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/CommitOffsets"
           }
          }
         }
        },
        "responses": {
         "400": {
          "description": "Malformed JSON.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Unsupported Content-Type.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "Unknown field or invalid entry.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "200": {
          "description": "Committed (an empty array).",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "type": "array",
             "items": {}
            }
           }
          }
         },
         "409": {
          "description": "40903 the group rebalanced meanwhile.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "500": {
          "description": "50002 the commit could not be stored.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       },
       "get": {
        "summary": "Committed offsets of the given partitions (a JSON body, as REST Proxy takes it), or of the assigned ones.",
        "operationId": "committedOffsets",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "responses": {
         "200": {
          "description": "Offsets (partitions without a commit are left out).",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/CommittedOffsets"
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/consumers/{group}/instances/{instance}/positions": {
       "post": {
        "summary": "Seek assigned partitions to offsets or to the first offset at a time.",
        "operationId": "seek",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "requestBody": {
         "required": false,
         "content": {
          "application/vnd.kafka.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/Seek"
           }
          },
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/Seek"
           }
          }
         }
        },
        "responses": {
         "400": {
          "description": "Malformed JSON.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Unsupported Content-Type.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "Unknown field or invalid entry.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "204": {
          "description": "Positions set."
         },
         "409": {
          "description": "40903 a partition is not assigned to this instance.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/consumers/{group}/instances/{instance}/positions/beginning": {
       "post": {
        "summary": "Seek assigned partitions to their first offset.",
        "operationId": "seekToBeginning",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "requestBody": {
         "required": false,
         "content": {
          "application/vnd.kafka.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/Partitions"
           }
          },
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/Partitions"
           }
          }
         }
        },
        "responses": {
         "400": {
          "description": "Malformed JSON.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Unsupported Content-Type.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "Unknown field or invalid entry.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "204": {
          "description": "Positions set."
         },
         "409": {
          "description": "40903 a partition is not assigned to this instance.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/consumers/{group}/instances/{instance}/positions/end": {
       "post": {
        "summary": "Seek assigned partitions to their end.",
        "operationId": "seekToEnd",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         }
        ],
        "requestBody": {
         "required": false,
         "content": {
          "application/vnd.kafka.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/Partitions"
           }
          },
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/Partitions"
           }
          }
         }
        },
        "responses": {
         "400": {
          "description": "Malformed JSON.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Unsupported Content-Type.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "Unknown field or invalid entry.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "204": {
          "description": "Positions set."
         },
         "409": {
          "description": "40903 a partition is not assigned to this instance.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/consumers/{group}/instances/{instance}/records": {
       "get": {
        "summary": "Records past the positions, as soon as there are any, or [] after the timeout.",
        "operationId": "records",
        "parameters": [
         {
          "name": "group",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer group id."
         },
         {
          "name": "instance",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Consumer instance name."
         },
         {
          "name": "timeout",
          "in": "query",
          "required": false,
          "schema": {
           "type": "integer"
          },
          "description": "Milliseconds to wait at most (shortens consumer.request.timeout.ms)."
         },
         {
          "name": "max_bytes",
          "in": "query",
          "required": false,
          "schema": {
           "type": "integer"
          },
          "description": "Key and value bytes at most (at least one record)."
         }
        ],
        "responses": {
         "200": {
          "description": "Records.",
          "content": {
           "application/vnd.kafka.binary.v2+json": {
            "schema": {
             "type": "array",
             "items": {
              "$ref": "#/components/schemas/ConsumerRecord"
             }
            }
           },
           "application/vnd.kafka.json.v2+json": {
            "schema": {
             "type": "array",
             "items": {
              "$ref": "#/components/schemas/ConsumerRecord"
             }
            }
           }
          }
         },
         "400": {
          "description": "timeout or max_bytes not a number.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40403 consumer instance not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "406": {
          "description": "40601 the Accept format is not the instance's.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "408": {
          "description": "40801 a json-format instance met a key or value that is not JSON.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "409": {
          "description": "40903 neither subscribed nor assigned.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "500": {
          "description": "50002 no committed offset and auto.offset.reset=none.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/v1/webhooks": {
       "get": {
        "summary": "Every webhook subscription with its state, progress and last error.",
        "operationId": "listWebhooks",
        "responses": {
         "200": {
          "description": "Webhooks.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "type": "array",
             "items": {
              "$ref": "#/components/schemas/Webhook"
             }
            }
           }
          }
         }
        }
       },
       "post": {
        "summary": "Create a webhook subscription: each record of the topic is POSTed to the URL, in order per partition, at least once.",
        "operationId": "createWebhook",
        "requestBody": {
         "required": true,
         "content": {
          "application/vnd.kafka.v2+json": {
           "schema": {
            "$ref": "#/components/schemas/WebhookCreate"
           }
          },
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/WebhookCreate"
           }
          }
         }
        },
        "responses": {
         "201": {
          "description": "Created.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Webhook"
            }
           }
          }
         },
         "400": {
          "description": "Malformed JSON.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "404": {
          "description": "40401 topic not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "409": {
          "description": "40901 a webhook of that name exists.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "415": {
          "description": "Unsupported Content-Type.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "422": {
          "description": "A missing or invalid field.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "429": {
          "description": "42901 too many webhooks.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "500": {
          "description": "50002 the subscriptions file could not be written.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/v1/webhooks/{name}": {
       "get": {
        "summary": "One webhook subscription.",
        "operationId": "describeWebhook",
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Webhook name."
         }
        ],
        "responses": {
         "200": {
          "description": "The webhook.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Webhook"
            }
           }
          }
         },
         "404": {
          "description": "40404 webhook not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       },
       "delete": {
        "summary": "Delete a webhook subscription (its group's committed offsets stay).",
        "operationId": "deleteWebhook",
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Webhook name."
         }
        ],
        "responses": {
         "204": {
          "description": "Deleted."
         },
         "404": {
          "description": "40404 webhook not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "500": {
          "description": "50002 the subscriptions file could not be written.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/v1/webhooks/{name}/pause": {
       "post": {
        "summary": "Pause delivery (kept across restarts).",
        "operationId": "pauseWebhook",
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Webhook name."
         }
        ],
        "responses": {
         "200": {
          "description": "The webhook.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Webhook"
            }
           }
          }
         },
         "404": {
          "description": "40404 webhook not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "500": {
          "description": "50002 the subscriptions file could not be written.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      },
      "/v1/webhooks/{name}/resume": {
       "post": {
        "summary": "Resume delivery (kept across restarts).",
        "operationId": "resumeWebhook",
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          },
          "description": "Webhook name."
         }
        ],
        "responses": {
         "200": {
          "description": "The webhook.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Webhook"
            }
           }
          }
         },
         "404": {
          "description": "40404 webhook not found.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         },
         "500": {
          "description": "50002 the subscriptions file could not be written.",
          "content": {
           "application/vnd.kafka.v2+json": {
            "schema": {
             "$ref": "#/components/schemas/Error"
            }
           }
          }
         }
        }
       }
      }
     },
     "components": {
      "schemas": {
       "Error": {
        "type": "object",
        "required": [
         "error_code",
         "message"
        ],
        "properties": {
         "error_code": {
          "type": "integer"
         },
         "message": {
          "type": "string"
         }
        }
       },
       "Replica": {
        "type": "object",
        "required": [
         "broker",
         "leader",
         "in_sync"
        ],
        "properties": {
         "broker": {
          "type": "integer"
         },
         "leader": {
          "type": "boolean"
         },
         "in_sync": {
          "type": "boolean"
         }
        }
       },
       "Partition": {
        "type": "object",
        "required": [
         "partition",
         "leader",
         "replicas"
        ],
        "properties": {
         "partition": {
          "type": "integer"
         },
         "leader": {
          "type": "integer"
         },
         "replicas": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/Replica"
          }
         }
        }
       },
       "Topic": {
        "type": "object",
        "required": [
         "name",
         "configs",
         "partitions"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "configs": {
          "type": "object",
          "additionalProperties": {
           "type": "string"
          }
         },
         "partitions": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/Partition"
          }
         }
        }
       },
       "ProduceRecordJson": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
         "key": {
          "description": "Any JSON value, stored as compact JSON text; null or absent is a Kafka null."
         },
         "value": {
          "description": "Any JSON value, stored as compact JSON text; null or absent is a Kafka null."
         },
         "partition": {
          "type": "integer",
          "format": "int32",
          "minimum": 0,
          "nullable": true
         }
        }
       },
       "ProduceRecordBinary": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
         "key": {
          "type": "string",
          "format": "byte",
          "nullable": true,
          "description": "Standard base64."
         },
         "value": {
          "type": "string",
          "format": "byte",
          "nullable": true,
          "description": "Standard base64."
         },
         "partition": {
          "type": "integer",
          "format": "int32",
          "minimum": 0,
          "nullable": true
         }
        }
       },
       "ProduceRequestJson": {
        "type": "object",
        "required": [
         "records"
        ],
        "additionalProperties": false,
        "properties": {
         "records": {
          "type": "array",
          "minItems": 1,
          "items": {
           "$ref": "#/components/schemas/ProduceRecordJson"
          }
         },
         "key_schema": {
          "type": "string",
          "nullable": true
         },
         "key_schema_id": {
          "type": "integer",
          "nullable": true
         },
         "value_schema": {
          "type": "string",
          "nullable": true
         },
         "value_schema_id": {
          "type": "integer",
          "nullable": true
         }
        }
       },
       "ProduceRequestBinary": {
        "type": "object",
        "required": [
         "records"
        ],
        "additionalProperties": false,
        "properties": {
         "records": {
          "type": "array",
          "minItems": 1,
          "items": {
           "$ref": "#/components/schemas/ProduceRecordBinary"
          }
         },
         "key_schema": {
          "type": "string",
          "nullable": true
         },
         "key_schema_id": {
          "type": "integer",
          "nullable": true
         },
         "value_schema": {
          "type": "string",
          "nullable": true
         },
         "value_schema_id": {
          "type": "integer",
          "nullable": true
         }
        }
       },
       "ProduceOffset": {
        "type": "object",
        "required": [
         "partition",
         "offset",
         "error_code",
         "error"
        ],
        "properties": {
         "partition": {
          "type": "integer",
          "nullable": true
         },
         "offset": {
          "type": "integer",
          "nullable": true
         },
         "error_code": {
          "type": "integer",
          "nullable": true,
          "description": "50003 retriable, 50002 other failure."
         },
         "error": {
          "type": "string",
          "nullable": true
         }
        }
       },
       "ProduceResponse": {
        "type": "object",
        "required": [
         "offsets"
        ],
        "properties": {
         "key_schema_id": {
          "type": "integer",
          "nullable": true
         },
         "value_schema_id": {
          "type": "integer",
          "nullable": true
         },
         "offsets": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/ProduceOffset"
          }
         }
        }
       },
       "CreateConsumer": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
         "name": {
          "type": "string",
          "description": "Instance name (default rest-consumer-<random>)."
         },
         "id": {
          "type": "string",
          "description": "Deprecated alias of name."
         },
         "format": {
          "type": "string",
          "enum": [
           "binary",
           "json"
          ],
          "description": "Embedded format of keys and values in records (default binary)."
         },
         "auto.offset.reset": {
          "type": "string",
          "enum": [
           "earliest",
           "latest",
           "none"
          ]
         },
         "auto.commit.enable": {
          "type": "string",
          "enum": [
           "true",
           "false"
          ]
         },
         "fetch.min.bytes": {
          "type": "integer",
          "minimum": -1,
          "maximum": 10000000
         },
         "consumer.request.timeout.ms": {
          "type": "integer",
          "minimum": 0,
          "maximum": 300000
         },
         "responseMinBytes": {
          "type": "integer",
          "minimum": -1,
          "maximum": 10000000
         },
         "requestWaitMs": {
          "type": "integer",
          "minimum": 0,
          "maximum": 300000
         }
        }
       },
       "ConsumerInstance": {
        "type": "object",
        "properties": {
         "instance_id": {
          "type": "string"
         },
         "base_uri": {
          "type": "string"
         }
        }
       },
       "TopicPartition": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "topic",
         "partition"
        ],
        "properties": {
         "topic": {
          "type": "string"
         },
         "partition": {
          "type": "integer",
          "minimum": 0
         }
        }
       },
       "Partitions": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
         "partitions": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/TopicPartition"
          }
         }
        }
       },
       "Subscription": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
         "topics": {
          "type": "array",
          "items": {
           "type": "string"
          }
         },
         "topic_pattern": {
          "type": "string",
          "description": "A regular expression matched against whole topic names."
         }
        }
       },
       "OffsetEntry": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "topic",
         "partition",
         "offset"
        ],
        "properties": {
         "topic": {
          "type": "string"
         },
         "partition": {
          "type": "integer",
          "minimum": 0
         },
         "offset": {
          "type": "integer",
          "minimum": 0
         },
         "metadata": {
          "type": "string"
         }
        }
       },
       "CommitOffsets": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
         "offsets": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/OffsetEntry"
          }
         }
        }
       },
       "CommittedOffsets": {
        "type": "object",
        "properties": {
         "offsets": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/OffsetEntry"
          }
         }
        }
       },
       "Seek": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
         "offsets": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/OffsetEntry"
          }
         },
         "timestamps": {
          "type": "array",
          "items": {
           "type": "object",
           "additionalProperties": false,
           "required": [
            "topic",
            "partition",
            "timestamp"
           ],
           "properties": {
            "topic": {
             "type": "string"
            },
            "partition": {
             "type": "integer",
             "minimum": 0
            },
            "timestamp": {
             "type": "string",
             "format": "date-time"
            },
            "metadata": {
             "type": "string"
            }
           }
          }
         }
        }
       },
       "ConsumerRecord": {
        "type": "object",
        "properties": {
         "topic": {
          "type": "string"
         },
         "key": {
          "description": "base64 (binary) or the JSON value (json); null for a null key."
         },
         "value": {
          "description": "base64 (binary) or the JSON value (json); null for a null value."
         },
         "partition": {
          "type": "integer"
         },
         "offset": {
          "type": "integer"
         }
        }
       },
       "WebhookCreate": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "topic",
         "url"
        ],
        "properties": {
         "name": {
          "type": "string",
          "pattern": "^[A-Za-z0-9._-]{1,200}$"
         },
         "topic": {
          "type": "string"
         },
         "url": {
          "type": "string",
          "description": "http:// URL the records are POSTed to."
         },
         "secret": {
          "type": "string",
          "description": "Standard Webhooks secret: whsec_ + base64 of a 16 to 64 byte key."
         },
         "max_attempts": {
          "type": "integer",
          "minimum": 1,
          "maximum": 100,
          "default": 10
         },
         "dead_letter_topic": {
          "type": "string",
          "description": "Default NAME.dlq."
         },
         "from": {
          "type": "string",
          "enum": [
           "beginning",
           "end"
          ],
          "default": "end"
         },
         "timeout_ms": {
          "type": "integer",
          "minimum": 1,
          "maximum": 300000,
          "default": 10000
         },
         "retry_backoff_ms": {
          "type": "integer",
          "minimum": 1,
          "maximum": 600000,
          "default": 1000
         },
         "max_backoff_ms": {
          "type": "integer",
          "minimum": 1,
          "maximum": 3600000,
          "default": 60000
         }
        }
       },
       "Webhook": {
        "type": "object",
        "properties": {
         "name": {
          "type": "string"
         },
         "topic": {
          "type": "string"
         },
         "url": {
          "type": "string"
         },
         "signed": {
          "type": "boolean"
         },
         "max_attempts": {
          "type": "integer"
         },
         "dead_letter_topic": {
          "type": "string"
         },
         "from": {
          "type": "string"
         },
         "timeout_ms": {
          "type": "integer"
         },
         "retry_backoff_ms": {
          "type": "integer"
         },
         "max_backoff_ms": {
          "type": "integer"
         },
         "state": {
          "type": "string",
          "enum": [
           "active",
           "paused"
          ]
         },
         "group": {
          "type": "string"
         },
         "lag": {
          "type": "integer"
         },
         "partitions": {
          "type": "array",
          "items": {
           "type": "object",
           "properties": {
            "partition": {
             "type": "integer"
            },
            "delivered_offset": {
             "type": "integer",
             "nullable": true
            },
            "end_offset": {
             "type": "integer"
            },
            "lag": {
             "type": "integer",
             "nullable": true
            }
           }
          }
         },
         "delivered": {
          "type": "integer"
         },
         "failures": {
          "type": "integer"
         },
         "retries": {
          "type": "integer"
         },
         "dead_lettered": {
          "type": "integer"
         },
         "last_error": {
          "type": "string",
          "nullable": true
         },
         "last_status": {
          "type": "integer",
          "nullable": true
         },
         "last_error_at": {
          "type": "integer",
          "nullable": true
         }
        }
       }
      }
     }
    }
    """#
}
