// The qmpkit dashboard: one plain ES module, no framework, no build step. It speaks the VM
// supervisor's control protocol (JSON lines, one per WebSocket text frame) through
// `qmpkit serve`: `subscribe` for events and run state, `tree`, `graph`, `save`/`load`
// with progress. The token comes from this page's URL (`?token=…`, as `qmpkit serve`
// prints it) and goes into the WebSocket's URL (a browser cannot set WebSocket headers).

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const MAX_EVENTS = 200;

const ui = {
  connection: $('connection'),
  error: $('error'),
  dir: $('vm-dir'),
  runState: $('run-state'),
  qemu: $('qemu'),
  busy: $('busy'),
  form: /** @type {HTMLFormElement} */ ($('save-form')),
  name: /** @type {HTMLInputElement} */ ($('snapshot-name')),
  saveButton: /** @type {HTMLButtonElement} */ ($('save-button')),
  operation: $('operation'),
  progressLabel: $('progress-label'),
  progress: /** @type {HTMLProgressElement} */ ($('progress')),
  progressText: $('progress-text'),
  noSnapshots: $('no-snapshots'),
  tree: $('snapshot-tree'),
  graph: /** @type {HTMLTableSectionElement} */ (document.querySelector('#block-graph tbody')),
  events: $('event-log'),
};

/** Shows an error in the alert region (or hides it). */
function showError(text) {
  ui.error.hidden = text === '';
  ui.error.textContent = text;
}

/** The control connection: requests by id, progress lines to the request that asked. */
class Control {
  constructor(url) {
    this.nextId = 1;
    this.pending = new Map();
    this.ws = new WebSocket(url);
    this.hello = new Promise((resolve, reject) => {
      this.ws.addEventListener('message', (ev) => this.receive(ev.data, resolve));
      this.ws.addEventListener('close', (ev) => {
        const why = `connection closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`;
        reject(new Error(why));
        for (const p of this.pending.values()) p.reject(new Error(why));
        this.pending.clear();
        this.onClose?.(ev);
      });
    });
  }

  receive(data, hello) {
    let message;
    try {
      message = JSON.parse(String(data));
    } catch {
      showError(`the server sent something that is not JSON: ${String(data).slice(0, 80)}`);
      return;
    }
    if (message.hello) {
      hello(message.hello);
      return;
    }
    const pending = this.pending.get(message.id);
    if (pending === undefined) {
      if (message.error) showError(`${message.error.name}: ${message.error.message}`);
      return;
    }
    if ('progress' in message) {
      pending.onProgress?.(message.progress);
      return;
    }
    this.pending.delete(message.id);
    if (message.error) {
      const error = new Error(message.error.message);
      error.name = message.error.name;
      pending.reject(error);
    } else pending.resolve(message.result);
  }

  /** Sends a request; resolves with its result (rejects with the supervisor's error). */
  request(method, params = {}, onProgress = undefined) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }
}

let control;
let lastStatus;
let busy = false;

function renderStatus(status) {
  lastStatus = status;
  ui.dir.textContent = status.dir;
  ui.runState.textContent = status.qemu.runState;
  ui.runState.dataset.state = status.qemu.runState;
  ui.qemu.textContent = `${status.qemu.version}, pid ${status.qemu.pid}, ${status.qemu.accel}`;
  ui.busy.textContent = status.busy ? `${status.busy.method} '${status.busy.name}'` : 'idle';
  setBusy(status.busy !== null || busy);
}

function setBusy(value) {
  ui.saveButton.disabled = value;
  for (const button of ui.tree.querySelectorAll('button')) button.disabled = value;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function renderTree(tree) {
  ui.tree.replaceChildren(...tree.roots.map((node) => treeItem(node, tree.current)));
  ui.noSnapshots.hidden = tree.roots.length > 0;
  setBusy(busy || lastStatus?.busy != null);
}

function treeItem(node, current, parentPath = '') {
  const li = document.createElement('li');
  li.dataset.snapshot = node.name;
  li.dataset.path = parentPath === '' ? node.name : `${parentPath}/${node.name}`;
  if (node.id === current) li.className = 'current';
  const name = document.createElement('span');
  name.className = 'snapshot-name';
  name.textContent = node.name;
  const meta = document.createElement('span');
  meta.className = 'snapshot-meta';
  const when = new Date(node.createdAt).toLocaleString();
  meta.textContent = ` ${node.strategy}${node.live ? ' (live)' : ''}, ${bytes(node.vmStateBytes)}, ${when}${node.id === current ? ' — current' : ''}`;
  const load = document.createElement('button');
  load.type = 'button';
  load.textContent = 'Load';
  load.setAttribute('aria-label', `Load snapshot ${node.name}`);
  load.addEventListener('click', () => runOperation('load', node.name));
  li.append(name, meta, load);
  if (node.children.length > 0) {
    const ul = document.createElement('ul');
    ul.append(...node.children.map((child) => treeItem(child, current, li.dataset.path)));
    li.append(ul);
  }
  return li;
}

function renderGraph(graph) {
  const names = new Map(graph.nodes.map((n) => [n.id, n]));
  const label = (id) => {
    const n = names.get(id);
    return n ? `${n.name || '(anonymous)'} [${n.type}]` : String(id);
  };
  ui.graph.replaceChildren(
    ...graph.edges.map((edge) => {
      const tr = document.createElement('tr');
      for (const text of [label(edge.parent), edge.name, label(edge.child)]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
}

function logEvent(event) {
  const li = document.createElement('li');
  const t = new Date(event.timestamp.seconds * 1000 + event.timestamp.microseconds / 1000);
  const data = event.data === undefined ? '' : ` ${JSON.stringify(event.data)}`;
  li.textContent = `${t.toISOString().slice(11, 23)} ${event.event}${data}`;
  li.dataset.event = event.event;
  ui.events.append(li);
  while (ui.events.children.length > MAX_EVENTS) ui.events.firstElementChild?.remove();
  ui.events.scrollTop = ui.events.scrollHeight;
}

async function refresh() {
  const [tree, graph] = await Promise.all([
    control.request('tree'),
    control.request('graph').catch((error) => {
      showError(`block graph: ${error.message}`);
      return { nodes: [], edges: [] };
    }),
  ]);
  renderTree(tree);
  renderGraph(graph);
}

async function runOperation(method, name) {
  busy = true;
  setBusy(true);
  showError('');
  ui.operation.hidden = false;
  ui.progressLabel.textContent = `${method === 'save' ? 'Saving' : 'Loading'} ${name}`;
  ui.progress.removeAttribute('value');
  ui.progressText.textContent = '';
  try {
    const result = await control.request(method, { name }, (p) => {
      if (p.percent !== undefined && p.percent !== null) ui.progress.value = p.percent;
      ui.progressText.textContent = `${p.phase} ${bytes(p.bytes)}${p.percent != null ? ` (${Math.round(p.percent)}%)` : ''}`;
    });
    ui.progress.value = 100;
    ui.progressText.textContent = `${method === 'save' ? 'saved' : 'loaded'} ${result.name} in ${Math.round(result.totalMs)} ms`;
  } catch (error) {
    ui.progressText.textContent = 'failed';
    showError(`${method} ${name}: ${error.name}: ${error.message}`);
  } finally {
    busy = false;
    setBusy(lastStatus?.busy != null);
    await refresh().catch((error) => showError(error.message));
  }
}

async function start() {
  const token = new URLSearchParams(location.search).get('token');
  if (token === null || token === '') {
    ui.connection.textContent = 'not connected';
    showError('No token: open the URL `qmpkit serve` printed (it ends in ?token=…).');
    return;
  }
  control = new Control(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
  control.onClose = (ev) => {
    ui.connection.textContent = 'disconnected';
    setBusy(true);
    showError(
      `Connection closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''}). Reload to reconnect.`,
    );
  };
  const hello = await control.hello;
  ui.connection.textContent = `connected (supervisor pid ${hello.pid})`;
  let snapshots;
  control
    .request('subscribe', {}, (notice) => {
      if (notice.kind === 'event') logEvent(notice.event);
      else {
        renderStatus(notice.status);
        // Another page or the CLI saved or deleted one: show it.
        if (snapshots !== undefined && notice.status.snapshots !== snapshots && !busy)
          refresh().catch((error) => showError(error.message));
        snapshots = notice.status.snapshots;
      }
    })
    .catch((error) => showError(`events: ${error.message}`));
  await refresh();
  ui.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!ui.form.reportValidity()) return;
    runOperation('save', ui.name.value);
  });
  document.body.dataset.ready = 'true';
}

start().catch((error) => showError(error.message));
