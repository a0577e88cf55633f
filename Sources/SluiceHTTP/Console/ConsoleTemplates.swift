import Mustache

/// The web console's Mustache templates (swift-mustache), its style sheet and its one small
/// script. Every page renders complete without JavaScript; the script only keeps the
/// overview's figures live (Server-Sent Events) and asks before a destructive action.
/// `{{x}}` escapes HTML; `{{{x}}}` is used only for markup this code rendered itself.
enum ConsoleTemplates {
  static let library: MustacheLibrary = {
    var library = MustacheLibrary()
    for (name, text) in templates {
      // The templates are constants: a syntax error is a programming error caught by tests.
      try! library.register(text, named: name)
    }
    return library
  }()

  static func render(_ context: [String: Any], _ name: String) -> String {
    library.render(context, withTemplate: name) ?? ""
  }

  static let templates: [String: String] = [
    "layout": """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{title}} · Sluice</title>
    <link rel="stylesheet" href="/ui/style.css">
    <script src="/ui/console.js" defer></script>
    </head>
    <body>
    <a class="skip" href="#main">Skip to content</a>
    <header>
    <a class="brand" href="/ui">Sluice</a>
    <nav aria-label="Sections">
    <ul>
    {{#nav}}<li><a href="{{href}}"{{#current}} aria-current="page"{{/current}}>{{label}}</a></li>{{/nav}}
    </ul>
    </nav>
    </header>
    <main id="main">
    <h1>{{title}}</h1>
    {{#notice}}<p class="notice" role="status">{{notice}}</p>{{/notice}}
    {{#problem}}<p class="problem" role="alert">{{problem}}</p>{{/problem}}
    {{{body}}}
    </main>
    </body>
    </html>
    """,
    "overview": """
    <section aria-labelledby="broker-h">
    <h2 id="broker-h">Broker</h2>
    <dl class="figures" data-live="/ui/live">
    <div><dt>Cluster id</dt><dd id="cluster-id">{{clusterId}}</dd></div>
    <div><dt>Uptime</dt><dd data-field="uptime">{{uptime}}</dd></div>
    <div><dt>Kafka connections</dt><dd data-field="connections" id="connections">{{connections}}</dd></div>
    <div><dt>Records in per second</dt><dd data-field="recordsInRate" id="records-in-rate">{{recordsInRate}}</dd></div>
    <div><dt>Records out per second</dt><dd data-field="recordsOutRate" id="records-out-rate">{{recordsOutRate}}</dd></div>
    <div><dt>Topics</dt><dd data-field="topics" id="topic-count">{{topics}}</dd></div>
    <div><dt>Partitions</dt><dd data-field="partitions">{{partitions}}</dd></div>
    <div><dt>Offline partitions</dt><dd data-field="offline" id="offline-partitions">{{offline}}</dd></div>
    <div><dt>Consumer groups</dt><dd data-field="groups">{{groups}}</dd></div>
    <div><dt>Webhooks</dt><dd data-field="webhooks">{{webhooks}}</dd></div>
    </dl>
    </section>
    {{#hasOfflineList}}
    <section aria-labelledby="offline-h">
    <h2 id="offline-h">Offline partitions</h2>
    <ul>{{#offlineList}}<li>{{.}}</li>{{/offlineList}}</ul>
    </section>
    {{/hasOfflineList}}
    <section aria-labelledby="listeners-h">
    <h2 id="listeners-h">Listeners</h2>
    <div class="scroll" role="region" aria-labelledby="listeners-h" tabindex="0">
    <table>
    <thead><tr><th scope="col">Listener</th><th scope="col" class="num">Open connections</th></tr></thead>
    <tbody>{{#listeners}}<tr><td>{{name}}</td><td class="num">{{count}}</td></tr>{{/listeners}}</tbody>
    </table>
    </div>
    </section>
    """,
    "topics": """
    <div class="scroll" role="region" aria-labelledby="topics-caption" tabindex="0">
    <table id="topics">
    <caption id="topics-caption">{{count}} topics</caption>
    <thead><tr><th scope="col">Topic</th><th scope="col" class="num">Partitions</th><th scope="col" class="num">Records</th><th scope="col" class="num">Size</th><th scope="col" class="num">In per second</th><th scope="col" class="num">Out per second</th><th scope="col">Storage</th></tr></thead>
    <tbody>
    {{#topics}}<tr data-topic="{{name}}"><th scope="row"><a href="/ui/topics/{{path}}">{{name}}</a></th><td class="num">{{partitions}}</td><td class="num">{{records}}</td><td class="num">{{size}}</td><td class="num">{{inRate}}</td><td class="num">{{outRate}}</td><td>{{storage}}</td></tr>
    {{/topics}}
    </tbody>
    </table>
    </div>
    {{#canCreate}}
    <section aria-labelledby="create-h">
    <h2 id="create-h">Create a topic</h2>
    <form method="post" action="/ui/topics" class="stack">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <label for="create-name">Name</label>
    <input id="create-name" name="name" required maxlength="249" pattern="[A-Za-z0-9._\\-]+" autocomplete="off">
    <label for="create-partitions">Partitions</label>
    <input id="create-partitions" name="partitions" type="number" min="1" max="10000" value="1" required>
    <label for="create-configs">Configs, one <code>key=value</code> per line (optional)</label>
    <textarea id="create-configs" name="configs" rows="3"></textarea>
    <button type="submit">Create topic</button>
    </form>
    </section>
    {{/canCreate}}
    """,
    "topic": """
    <p><a href="/ui/topics/{{path}}/records">Browse records</a></p>
    <section aria-labelledby="partitions-h">
    <h2 id="partitions-h">Partitions</h2>
    <div class="scroll" role="region" aria-labelledby="partitions-h" tabindex="0">
    <table id="partitions">
    <thead><tr><th scope="col" class="num">Partition</th><th scope="col" class="num">Log start</th><th scope="col" class="num">High watermark</th><th scope="col" class="num">Log end</th><th scope="col" class="num">Size</th><th scope="col">State</th></tr></thead>
    <tbody>
    {{#partitions}}<tr><th scope="row" class="num"><a href="/ui/topics/{{path}}/records?partition={{index}}">{{index}}</a></th><td class="num">{{start}}</td><td class="num" data-hwm="{{index}}">{{highWatermark}}</td><td class="num">{{end}}</td><td class="num">{{size}}</td><td>{{state}}</td></tr>
    {{/partitions}}
    </tbody>
    </table>
    </div>
    </section>
    <section aria-labelledby="configs-h">
    <h2 id="configs-h">Configs set on this topic</h2>
    {{#hasConfigs}}
    <table id="configs">
    <thead><tr><th scope="col">Config</th><th scope="col">Value</th></tr></thead>
    <tbody>{{#configs}}<tr><th scope="row">{{key}}</th><td>{{value}}</td></tr>{{/configs}}</tbody>
    </table>
    {{/hasConfigs}}
    {{^hasConfigs}}<p>None: every config has the broker's default.</p>{{/hasConfigs}}
    {{#canAlter}}
    <form method="post" action="/ui/topics/{{path}}/configs" class="inline">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <label for="config-key">Config</label>
    <input id="config-key" name="key" required list="config-names" autocomplete="off">
    <label for="config-value">Value (empty: back to the default)</label>
    <input id="config-value" name="value" autocomplete="off">
    <button type="submit">Set config</button>
    </form>
    {{/canAlter}}
    </section>
    {{#canDelete}}
    <section aria-labelledby="delete-h" class="danger">
    <h2 id="delete-h">Delete this topic</h2>
    <form method="post" action="/ui/topics/{{path}}/delete" data-confirm="Delete topic {{name}} and all its records?">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <label for="confirm-name">Type the topic's name to confirm</label>
    <input id="confirm-name" name="confirm" required autocomplete="off">
    <button type="submit" class="destructive">Delete topic</button>
    </form>
    </section>
    {{/canDelete}}
    """,
    "records": """
    <form method="get" action="/ui/topics/{{path}}/records" class="inline" aria-label="Which records">
    <label for="r-partition">Partition</label>
    <select id="r-partition" name="partition">{{#partitionOptions}}<option value="{{index}}"{{#selected}} selected{{/selected}}>{{index}}</option>{{/partitionOptions}}</select>
    <label for="r-offset">From offset</label>
    <input id="r-offset" name="offset" type="number" min="0" value="{{offset}}">
    <label for="r-time">or from time (ms since the epoch, or 2026-12-08T10:00:00Z)</label>
    <input id="r-time" name="time" value="{{time}}">
    <label for="r-key">Key contains</label>
    <input id="r-key" name="key" value="{{key}}">
    <label for="r-format">Binary as</label>
    <select id="r-format" name="binary"><option value="hex"{{#hex}} selected{{/hex}}>hex</option><option value="base64"{{^hex}} selected{{/hex}}>base64</option></select>
    <button type="submit">Show</button>
    </form>
    <p id="records-range">Partition {{partition}}: offsets {{start}} to {{highWatermark}} (exclusive). {{summary}}</p>
    <ol class="records" id="records">
    {{#records}}
    <li data-offset="{{offset}}">
    <h2 class="record-h">Offset {{offset}} <span class="muted">{{time}}</span></h2>
    <dl>
    <dt>Key</dt><dd>{{#keyText}}<code class="key">{{keyText}}</code>{{/keyText}}{{^keyText}}<span class="muted">none</span>{{/keyText}} {{#keyKind}}<span class="kind">{{keyKind}}</span>{{/keyKind}}</dd>
    <dt>Value <span class="kind">{{valueKind}}</span></dt><dd><pre class="value">{{valueText}}</pre></dd>
    {{#hasHeaders}}<dt>Headers</dt><dd><ul>{{#headers}}<li><code>{{name}}</code>: <code>{{value}}</code></li>{{/headers}}</ul></dd>{{/hasHeaders}}
    </dl>
    </li>
    {{/records}}
    </ol>
    {{#next}}<p><a href="{{next}}" rel="next">Next records</a></p>{{/next}}
    """,
    "groups": """
    <section aria-labelledby="groups-h">
    <h2 id="groups-h">Consumer groups</h2>
    <div class="scroll" role="region" aria-labelledby="groups-h" tabindex="0">
    <table id="groups">
    <thead><tr><th scope="col">Group</th><th scope="col">State</th><th scope="col" class="num">Members</th><th scope="col" class="num">Lag</th></tr></thead>
    <tbody>{{#groups}}<tr data-group="{{name}}"><th scope="row"><a href="/ui/groups/{{path}}">{{name}}</a></th><td>{{state}}</td><td class="num">{{members}}</td><td class="num">{{lag}}</td></tr>{{/groups}}</tbody>
    </table>
    </div>
    </section>
    <section aria-labelledby="shares-h">
    <h2 id="shares-h">Share groups</h2>
    {{#hasShares}}
    <table id="share-groups">
    <thead><tr><th scope="col">Share group</th><th scope="col" class="num">Members</th><th scope="col" class="num">Partitions</th><th scope="col" class="num">In flight</th></tr></thead>
    <tbody>{{#shares}}<tr><th scope="row">{{name}}</th><td class="num">{{members}}</td><td class="num">{{partitions}}</td><td class="num">{{inFlight}}</td></tr>{{/shares}}</tbody>
    </table>
    {{/hasShares}}
    {{^hasShares}}<p>No share groups.</p>{{/hasShares}}
    </section>
    """,
    "group": """
    <p>State: <strong id="group-state">{{state}}</strong>{{#protocol}}; protocol {{protocol}}{{/protocol}}; total lag <strong id="group-lag">{{lag}}</strong>.</p>
    <section aria-labelledby="members-h">
    <h2 id="members-h">Members</h2>
    {{#hasMembers}}
    <table id="members">
    <thead><tr><th scope="col">Member</th><th scope="col">Client</th><th scope="col">Host</th><th scope="col">Assignment</th></tr></thead>
    <tbody>{{#members}}<tr><th scope="row">{{id}}</th><td>{{clientId}}</td><td>{{host}}</td><td>{{assignment}}</td></tr>{{/members}}</tbody>
    </table>
    {{/hasMembers}}
    {{^hasMembers}}<p>No members: the group is idle.</p>{{/hasMembers}}
    </section>
    <section aria-labelledby="lag-h">
    <h2 id="lag-h">Lag per partition</h2>
    <div class="scroll" role="region" aria-labelledby="lag-h" tabindex="0">
    <table id="lag">
    <thead><tr><th scope="col">Topic</th><th scope="col" class="num">Partition</th><th scope="col" class="num">Committed</th><th scope="col" class="num">High watermark</th><th scope="col" class="num">Lag</th></tr></thead>
    <tbody>{{#partitions}}<tr data-partition="{{topic}}-{{index}}"><th scope="row">{{topic}}</th><td class="num">{{index}}</td><td class="num">{{committed}}</td><td class="num">{{highWatermark}}</td><td class="num lag">{{lag}}</td></tr>{{/partitions}}</tbody>
    </table>
    </div>
    {{{chart}}}
    </section>
    {{#canReset}}
    <section aria-labelledby="reset-h">
    <h2 id="reset-h">Reset offsets</h2>
    {{#idle}}
    <form method="post" action="/ui/groups/{{path}}/reset" class="inline" data-confirm="Move group {{name}}'s committed offsets?">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <label for="reset-topic">Topic</label>
    <select id="reset-topic" name="topic">{{#topics}}<option>{{.}}</option>{{/topics}}</select>
    <label for="reset-to">To</label>
    <select id="reset-to" name="to"><option value="earliest">earliest</option><option value="latest">latest</option><option value="offset">offset</option></select>
    <label for="reset-offset">Offset (with "offset")</label>
    <input id="reset-offset" name="offset" type="number" min="0">
    <button type="submit">Reset offsets</button>
    </form>
    {{/idle}}
    {{^idle}}<p>Offsets can be reset only while the group has no members.</p>{{/idle}}
    </section>
    {{/canReset}}
    """,
    "webhooks": """
    {{#hasWebhooks}}
    <div class="scroll" role="region" aria-labelledby="webhooks-caption" tabindex="0">
    <table id="webhooks">
    <caption id="webhooks-caption">Webhook subscriptions</caption>
    <thead><tr><th scope="col">Webhook</th><th scope="col">Topic</th><th scope="col">URL</th><th scope="col">State</th><th scope="col" class="num">Lag</th><th scope="col" class="num">Delivered</th><th scope="col" class="num">Failures</th><th scope="col" class="num">Dead-lettered</th><th scope="col">Last error</th><th scope="col">Action</th></tr></thead>
    <tbody>
    {{#webhooks}}<tr data-webhook="{{name}}"><th scope="row">{{name}}</th><td>{{topic}}</td><td>{{url}}</td><td class="state">{{state}}</td><td class="num">{{lag}}</td><td class="num">{{delivered}}</td><td class="num">{{failures}}</td><td class="num">{{deadLettered}}</td><td>{{lastError}}</td>
    <td>{{#canAlter}}<form method="post" action="/ui/webhooks/{{path}}/{{action}}"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">{{actionLabel}}</button></form>{{/canAlter}}</td></tr>
    {{/webhooks}}
    </tbody>
    </table>
    </div>
    {{/hasWebhooks}}
    {{^hasWebhooks}}<p>No webhook subscriptions (<code>sluice webhook create</code> or <code>POST /v1/webhooks</code>).</p>{{/hasWebhooks}}
    """,
    "udp": """
    <section aria-labelledby="feeds-h">
    <h2 id="feeds-h">Multicast feeds</h2>
    {{#hasFeeds}}
    <table id="feeds">
    <thead><tr><th scope="col">Topic</th>{{#feedColumns}}<th scope="col" class="num">{{.}}</th>{{/feedColumns}}</tr></thead>
    <tbody>{{#feeds}}<tr><th scope="row">{{topic}}</th>{{#values}}<td class="num">{{.}}</td>{{/values}}</tr>{{/feeds}}</tbody>
    </table>
    {{/hasFeeds}}
    {{^hasFeeds}}<p>No topic is multicast (<code>sluice.feed.group</code>).</p>{{/hasFeeds}}
    </section>
    <section aria-labelledby="statsd-h">
    <h2 id="statsd-h">StatsD intake</h2>
    {{#hasStatsd}}
    <table id="statsd"><tbody>{{#statsd}}<tr><th scope="row">{{name}}</th><td class="num">{{value}}</td></tr>{{/statsd}}</tbody></table>
    {{/hasStatsd}}
    {{^hasStatsd}}<p>The StatsD intake is off (<code>--statsd-listen</code>).</p>{{/hasStatsd}}
    </section>
    """,
    "quotas": """
    {{#hasQuotas}}
    <table id="quotas">
    <thead><tr><th scope="col">Entity</th><th scope="col">Quota</th><th scope="col" class="num">Value</th></tr></thead>
    <tbody>{{#quotas}}<tr><th scope="row">{{entity}}</th><td>{{key}}</td><td class="num">{{value}}</td></tr>{{/quotas}}</tbody>
    </table>
    {{/hasQuotas}}
    {{^hasQuotas}}<p>No client quotas are set.</p>{{/hasQuotas}}
    """,
    "error": """
    <p><a href="/ui">Back to the overview</a></p>
    """,
  ]

  static let css = """
    :root { --fg: #1b1f23; --muted: #5a6470; --line: #d0d7de; --accent: #0b57d0; --bg: #fff; --warn: #9a3412; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
    .skip { position: absolute; left: -999px; } .skip:focus { left: 8px; top: 8px; background: #fff; padding: 4px 8px; z-index: 2; }
    header { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 24px; padding: 10px 20px; border-bottom: 1px solid var(--line); }
    .brand { font-weight: 700; font-size: 18px; color: var(--fg); text-decoration: none; }
    nav ul { display: flex; flex-wrap: wrap; gap: 4px 16px; list-style: none; margin: 0; padding: 0; }
    nav a[aria-current] { font-weight: 700; text-decoration: underline; }
    a { color: var(--accent); }
    a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible, [tabindex]:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
    main { padding: 12px 20px 40px; max-width: 1200px; }
    h1 { font-size: 22px; margin: 8px 0 16px; word-break: break-all; } h2 { font-size: 17px; margin: 24px 0 8px; }
    .figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 10px; margin: 0; }
    .figures div { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
    .figures dt { color: var(--muted); font-size: 13px; } .figures dd { margin: 2px 0 0; font-size: 20px; font-variant-numeric: tabular-nums; word-break: break-all; }
    .scroll { overflow-x: auto; }
    table { border-collapse: collapse; width: 100%; margin: 4px 0 12px; }
    caption { text-align: left; color: var(--muted); padding: 4px 0; }
    th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
    thead th { font-size: 13px; color: var(--muted); }
    .num { text-align: right; font-variant-numeric: tabular-nums; }
    form.stack { display: grid; gap: 6px; max-width: 420px; }
    form.inline { display: flex; flex-wrap: wrap; align-items: end; gap: 6px 10px; margin: 8px 0; }
    input, select, textarea, button { font: inherit; padding: 5px 8px; border: 1px solid #8c959f; border-radius: 4px; }
    button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
    button.destructive { background: #b42318; border-color: #b42318; }
    .danger { border: 1px solid #fda29b; border-radius: 6px; padding: 0 14px 12px; }
    .notice { background: #ecfdf3; border: 1px solid #abefc6; padding: 8px 12px; border-radius: 4px; }
    .problem { background: #fef3f2; border: 1px solid #fda29b; padding: 8px 12px; border-radius: 4px; }
    .muted { color: var(--muted); font-weight: 400; font-size: 13px; }
    .kind { color: var(--warn); font-size: 12px; font-weight: 400; }
    .records { list-style: none; padding: 0; }
    .records > li { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; margin-bottom: 10px; }
    .record-h { font-size: 15px; margin: 4px 0; }
    .records dt { font-weight: 600; margin-top: 4px; } .records dd { margin: 0 0 4px; }
    pre.value { white-space: pre-wrap; word-break: break-all; background: #f6f8fa; padding: 8px; border-radius: 4px; margin: 2px 0; max-height: 24em; overflow: auto; }
    svg.chart { max-width: 100%; height: auto; }
    @media (max-width: 600px) { main { padding: 8px 10px 30px; } th, td { padding: 5px 6px; } .figures dd { font-size: 17px; } }
    """

  /// Live figures on the overview (Server-Sent Events from /ui/live), and a confirmation
  /// before forms marked `data-confirm`. Nothing else needs it.
  static let script = """
    document.addEventListener("submit", function (e) {
      var message = e.target.getAttribute("data-confirm");
      if (message && !window.confirm(message)) { e.preventDefault(); }
    });
    var live = document.querySelector("[data-live]");
    if (live && window.EventSource) {
      var source = new EventSource(live.getAttribute("data-live"));
      source.addEventListener("figures", function (e) {
        var figures = JSON.parse(e.data);
        live.querySelectorAll("[data-field]").forEach(function (element) {
          var value = figures[element.getAttribute("data-field")];
          if (value !== undefined && element.textContent !== String(value)) { element.textContent = value; }
        });
      });
    }
    """
}
