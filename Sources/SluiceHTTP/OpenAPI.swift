/// The OpenAPI 3 document of the HTTP API, served at `/openapi.json`. `OpenAPITests` keeps
/// its paths and methods equal to the router's.
enum OpenAPIDocument {
  static let text = #"""
    {
     "openapi": "3.0.3",
     "info": {
      "title": "Sluice HTTP API",
      "version": "1",
      "description": "Confluent REST Proxy v2 (topics, partitions, produce), Server-Sent Events, Prometheus metrics. See docs/http.md."
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
       }
      }
     }
    }
    """#
}
