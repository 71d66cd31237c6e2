// The buyer's page (index.html): signs in through the public API under /api/v1, lists
// the items with their sale windows, queues in an item's waiting room and follows the
// ticket, buys, and shows the buyer's orders. The contract is docs/api.md and
// proto-docs/openapi.json; the calls themselves are api.js's. Every answer the API
// refuses is shown by its `message`. Every polling loop is bounded. Text from the API
// only ever goes into textContent, never into markup.
import { ApiError, call, newIdempotencyKey } from '/api.js';

const TOKEN_KEY = 'flash-sale.token';
/** A ticket is read again every second while it can still change, at most this often. */
const TICKET_POLL_MS = 1000;
const TICKET_POLLS = 900;
/** Ticket reads that may fail in a row before the page stops following the ticket. */
const TICKET_POLL_FAILURES = 5;
/** How often countdowns are redrawn (ms): a sale opens on the page within this. */
const TICK_MS = 250;
/** After a purchase the orders are read again each second while one is pending. */
const ORDER_POLLS = 10;
/** States after which a ticket no longer changes by itself. */
const SETTLED = new Set(['used', 'lapsed', 'sold_out', 'closed']);
const STATE_LABELS = {
  pre_queue: 'In the queue for the start',
  waiting: 'Waiting',
  admitted: 'Your turn',
  used: 'Bought',
  lapsed: 'Pass ran out',
  sold_out: 'Sold out',
  closed: 'Sale ended',
};

const page = {
  token: sessionStorage.getItem(TOKEN_KEY),
  /** id -> item, as GET /items gave it. */
  items: new Map(),
  /** id -> the card's elements. */
  cards: new Map(),
  /** id -> the buyer's ticket in that item's waiting room. */
  tickets: new Map(),
  /** id -> { timer, polls, failures } of a ticket being followed. */
  follows: new Map(),
  /** ids of items with a join or a purchase in flight. */
  busy: new Set(),
  /** order id -> its list entry's elements. */
  orderRows: new Map(),
  orderPoll: null,
};

const $ = (id) => document.getElementById(id);

/** Calls the API as the signed-in buyer, telling them when a refused call is retried. */
function api(method, path, body, options = {}) {
  return call(method, path, body, { ...options, token: page.token, onRetry: showNotice });
}

// ---- messages --------------------------------------------------------------------

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = false;
}

function showNotice(text) {
  $('notice').textContent = text;
  $('notice').hidden = false;
}

function clearMessages() {
  for (const id of ['error', 'notice']) {
    $(id).textContent = '';
    $(id).hidden = true;
  }
}

/** The error's message, with a validation error's field messages after it. */
function describe(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  const fields = error.body.errors && typeof error.body.errors === 'object'
    ? Object.values(error.body.errors).flat().filter((m) => typeof m === 'string')
    : [];
  const extra = fields.filter((m) => m !== error.message);
  return extra.length ? `${error.message} ${extra.join(' ')}` : error.message;
}

/** Shows a refused call; a token the API no longer takes signs the buyer out. */
function report(error) {
  showError(describe(error));
  if (error instanceof ApiError && error.status === 401 && error.code === 'UNAUTHENTICATED' && page.token) {
    signedOut();
  }
}

// ---- formatting ------------------------------------------------------------------

function formatPrice(cents) {
  return (cents / 100).toFixed(2);
}

function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

function formatDuration(secs) {
  const total = Math.max(0, Math.ceil(secs));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return m ? `${h} h ${m} min` : `${h} h`;
  if (m) return s ? `${m} min ${s} s` : `${m} min`;
  return `${s} s`;
}

/** 'upcoming', 'open' or 'ended' at `now` (ms), by the item's sale window. */
function phase(item, now) {
  if (item.sale_starts_at && now < Date.parse(item.sale_starts_at)) return 'upcoming';
  if (item.sale_ends_at && now >= Date.parse(item.sale_ends_at)) return 'ended';
  return 'open';
}

function el(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- signing in ------------------------------------------------------------------

function setToken(token) {
  page.token = token;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

async function login(event) {
  event.preventDefault();
  clearMessages();
  const body = { email: $('login-email').value, password: $('login-password').value };
  try {
    const answer = await api('POST', '/auth/login', body);
    setToken(answer.access_token);
    $('login-password').value = '';
    await signedIn('Signed in.');
  } catch (error) {
    report(error);
  }
}

async function register(event) {
  event.preventDefault();
  clearMessages();
  const body = {
    name: $('register-name').value,
    email: $('register-email').value,
    password: $('register-password').value,
  };
  try {
    const answer = await api('POST', '/auth/register', body);
    setToken(answer.token);
    $('register-password').value = '';
    await signedIn(`Registered and signed in as ${answer.user.email}.`);
  } catch (error) {
    report(error);
  }
}

async function signedIn(notice) {
  try {
    const me = await api('GET', '/auth/me');
    $('whoami').textContent = `${me.name} (${me.email})`;
  } catch (error) {
    report(error);
    if (!page.token) await loadItems();
    return;
  }
  $('auth').hidden = true;
  $('session').hidden = false;
  $('my-orders').hidden = false;
  if (notice) showNotice(notice);
  await loadItems();
  await Promise.all([loadOrders(), restoreTickets()]);
}

/** Back to signed out: the token is forgotten (by the API too, when `revoke`). */
function signedOut() {
  setToken(null);
  for (const id of [...page.follows.keys()]) unfollow(id);
  page.tickets.clear();
  for (const row of page.orderRows.values()) row.li.remove();
  page.orderRows.clear();
  $('auth').hidden = false;
  $('session').hidden = true;
  $('my-orders').hidden = true;
  $('whoami').textContent = '';
  for (const id of page.items.keys()) updateCard(id);
}

async function logout() {
  clearMessages();
  try {
    await api('POST', '/auth/logout');
    showNotice('Signed out.');
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) report(error);
  }
  signedOut();
}

// ---- items -----------------------------------------------------------------------

async function loadItems() {
  let answer;
  try {
    answer = await api('GET', '/items?per_page=100');
  } catch (error) {
    report(error);
    return;
  }
  const seen = new Set();
  for (const item of answer.data) {
    seen.add(item.id);
    page.items.set(item.id, item);
    if (!page.cards.has(item.id)) createCard(item);
    updateCard(item.id);
  }
  for (const id of [...page.items.keys()]) {
    if (!seen.has(id)) {
      page.items.delete(id);
      page.cards.get(id).li.remove();
      page.cards.delete(id);
      unfollow(id);
    }
  }
  $('items-empty').hidden = page.items.size > 0;
}

/** The card of an item: built once, then kept up to date by updateCard. */
function createCard(item) {
  const id = item.id;
  const li = el('li', { id: `item-${id}`, class: 'item' });
  const card = { li };
  li.append(el('h3', {}, item.name));
  card.description = li.appendChild(el('p', { class: 'description' }));
  const facts = li.appendChild(el('p', { class: 'facts' }));
  facts.append('Price ');
  card.price = facts.appendChild(el('strong', { id: `price-${id}` }));
  facts.append(' · Stock ');
  card.stock = facts.appendChild(el('strong', { id: `stock-${id}` }));
  card.limit = facts.appendChild(el('span'));
  card.window = li.appendChild(el('p', { id: `window-${id}`, class: 'window' }));
  card.countdown = li.appendChild(el('p', { id: `countdown-${id}`, class: 'countdown', hidden: '' }));
  card.terms = li.appendChild(el('p', { class: 'terms' }));
  card.room = li.appendChild(el('div', { class: 'room', hidden: '' }));
  card.roomTerms = card.room.appendChild(el('p', { class: 'room-terms' }));
  card.join = card.room.appendChild(el('button', { type: 'button', id: `join-${id}` }, 'Join the queue'));
  card.join.addEventListener('click', () => join(id));
  card.ticket = card.room.appendChild(el('div', { id: `ticket-${id}`, class: 'ticket', hidden: '' }));
  card.ticketState = card.ticket.appendChild(el('span', { id: `ticket-state-${id}`, class: 'ticket-state' }));
  card.ticketDetail = card.ticket.appendChild(el('p', { id: `ticket-detail-${id}` }));
  card.buy = li.appendChild(el('button', { type: 'button', id: `buy-${id}`, class: 'buy' }, 'Buy'));
  card.buy.addEventListener('click', () => buy(id));
  page.cards.set(id, card);
  $('items').append(li);
}

function updateCard(id) {
  const item = page.items.get(id);
  const card = page.cards.get(id);
  if (!item || !card) return;
  const now = Date.now();
  const when = phase(item, now);
  card.li.dataset.phase = when;
  card.description.textContent = item.description || '';
  card.description.hidden = !item.description;
  card.price.textContent = formatPrice(item.price);
  card.stock.textContent = String(item.stock);
  card.limit.textContent = item.max_per_user ? ` · At most ${item.max_per_user} per buyer` : '';

  const from = item.sale_starts_at ? `from ${formatTime(item.sale_starts_at)}` : '';
  const until = item.sale_ends_at ? `until ${formatTime(item.sale_ends_at)}` : '';
  card.window.textContent = {
    upcoming: `Sale ${[from, until].filter(Boolean).join(' ')}`,
    open: until ? `On sale ${until}` : 'On sale now',
    ended: 'The sale has ended',
  }[when];
  card.countdown.hidden = when !== 'upcoming';
  if (when === 'upcoming') {
    const secs = (Date.parse(item.sale_starts_at) - now) / 1000;
    card.countdown.dataset.startsAt = item.sale_starts_at;
    card.countdown.textContent = `Opens in ${formatDuration(secs)}`;
  } else {
    card.countdown.textContent = '';
  }
  card.terms.textContent = item.payment_window_secs
    ? `Buying reserves it: pay within ${formatDuration(item.payment_window_secs)}.`
    : '';
  card.terms.hidden = !item.payment_window_secs;

  const signedIn = Boolean(page.token);
  const busy = page.busy.has(id);
  card.room.hidden = !item.waiting_room;
  let canBuy;
  let why;
  if (item.waiting_room) {
    const ticket = page.tickets.get(id);
    const admitted = item.max_admitted
      ? `up to ${item.max_admitted} ${item.max_admitted === 1 ? 'buyer' : 'buyers'}`
      : 'as many buyers as there are units';
    card.roomTerms.textContent = `Waiting room: ${admitted} at a time, ${formatDuration(item.pass_secs)} each to buy.`;
    card.join.textContent = ticket && ticket.state === 'lapsed' ? 'Join again' : 'Join the queue';
    card.join.disabled = !signedIn || busy || when === 'ended' || Boolean(ticket && ticket.state !== 'lapsed');
    card.join.title = signedIn ? '' : 'Sign in to join the queue';
    renderTicket(id, ticket, now);
    canBuy = Boolean(ticket && ticket.state === 'admitted');
    why = 'Buying needs your turn in the waiting room';
  } else {
    canBuy = when === 'open' && item.stock > 0;
    why = { upcoming: 'The sale has not opened yet', ended: 'The sale has ended', open: 'Sold out' }[when];
  }
  card.buy.disabled = !signedIn || busy || !canBuy;
  card.buy.title = !signedIn ? 'Sign in to buy' : canBuy ? '' : why;
}

function renderTicket(id, ticket, now) {
  const card = page.cards.get(id);
  card.ticket.hidden = !ticket;
  if (!ticket) return;
  card.ticketState.dataset.state = ticket.state;
  card.ticketState.textContent = STATE_LABELS[ticket.state] || ticket.state;
  let detail;
  switch (ticket.state) {
    case 'pre_queue':
      detail = `${ticket.queue_length} joined before the start; places are drawn at random when the sale opens.`;
      break;
    case 'waiting':
      detail = `Position ${ticket.position}: ${ticket.ahead} ahead of you, ${ticket.queue_length} waiting.`;
      if (ticket.estimated_wait_secs !== null) detail += ` About ${formatDuration(ticket.estimated_wait_secs)} to wait.`;
      break;
    case 'admitted': {
      const left = ticket.admitted_until ? (Date.parse(ticket.admitted_until) - now) / 1000 : 0;
      detail = `Buy within ${formatDuration(left)} (until ${formatTime(ticket.admitted_until)}).`;
      break;
    }
    case 'used':
      detail = 'You bought with your pass.';
      break;
    case 'lapsed':
      detail = 'Your pass ran out before you bought. Join again to queue at the back.';
      break;
    case 'sold_out':
      detail = 'Nothing is left.';
      break;
    case 'closed':
      detail = 'The sale has ended.';
      break;
    default:
      detail = '';
  }
  card.ticketDetail.textContent = detail;
}

// ---- the waiting room ------------------------------------------------------------

function setTicket(id, ticket) {
  page.tickets.set(id, ticket);
  updateCard(id);
  if (SETTLED.has(ticket.state)) unfollow(id);
  else follow(id);
}

async function join(id) {
  clearMessages();
  page.busy.add(id);
  updateCard(id);
  try {
    const ticket = await api('POST', `/items/${id}/queue`);
    setTicket(id, ticket);
    showNotice(`Joined the queue for ${page.items.get(id).name}.`);
  } catch (error) {
    report(error);
  } finally {
    page.busy.delete(id);
    updateCard(id);
  }
}

/** Reads the buyer's ticket; false when they have none (404). */
async function readTicket(id) {
  try {
    setTicket(id, await api('GET', `/items/${id}/queue`));
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      page.tickets.delete(id);
      unfollow(id);
      updateCard(id);
      return false;
    }
    throw error;
  }
}

/** The tickets the buyer already holds, after signing in or a reload. */
async function restoreTickets() {
  const rooms = [...page.items.values()].filter((item) => item.waiting_room);
  await Promise.all(rooms.map((item) => readTicket(item.id).catch(report)));
}

/** Reads the ticket every second until it settles, TICKET_POLLS times at most. */
function follow(id) {
  if (page.follows.has(id)) return;
  const follow = { timer: null, polls: 0, failures: 0 };
  page.follows.set(id, follow);
  const step = async () => {
    if (page.follows.get(id) !== follow) return;
    follow.polls += 1;
    try {
      await readTicket(id);
      follow.failures = 0;
    } catch (error) {
      follow.failures += 1;
      report(error);
      if (follow.failures >= TICKET_POLL_FAILURES) {
        unfollow(id);
        showError(`${describe(error)} Stopped following the queue; press Refresh to look again.`);
        return;
      }
    }
    if (page.follows.get(id) !== follow) return;
    if (follow.polls >= TICKET_POLLS) {
      unfollow(id);
      showNotice('Stopped following the queue after a long wait; press Refresh to look again.');
      return;
    }
    follow.timer = setTimeout(step, TICKET_POLL_MS);
  };
  follow.timer = setTimeout(step, TICKET_POLL_MS);
}

function unfollow(id) {
  const follow = page.follows.get(id);
  if (follow) clearTimeout(follow.timer);
  page.follows.delete(id);
}

// ---- buying and orders -----------------------------------------------------------

async function buy(id) {
  clearMessages();
  page.busy.add(id);
  updateCard(id);
  const item = page.items.get(id);
  try {
    const answer = await api('POST', `/items/${id}/purchase`, { quantity: 1 }, { idempotencyKey: newIdempotencyKey() });
    const order = answer.order;
    const deadline = order.pay_by ? ` Pay by ${formatTime(order.pay_by)}.` : '';
    showNotice(`${answer.message} Order ${order.id} for ${item.name}: ${order.status}.${deadline}`);
    showOrder(order, true);
    $('orders-empty').hidden = true;
    followOrders();
  } catch (error) {
    report(error);
    // A purchase whose outcome is unknown may have happened: the orders say.
    if (error instanceof ApiError && (error.code === 'OUTCOME_UNKNOWN' || error.status === 0)) await loadOrders();
  } finally {
    page.busy.delete(id);
    if (item && item.waiting_room && page.token) await readTicket(id).catch(report);
    await loadItems();
  }
}

/** Adds or updates an order's entry (`first`: at the top of the list). */
function showOrder(order, first) {
  let row = page.orderRows.get(order.id);
  if (!row) {
    const li = el('li', { id: `order-${order.id}`, class: 'order' });
    row = { li };
    row.what = li.appendChild(el('span', { class: 'what' }));
    li.append(' ');
    row.status = li.appendChild(el('span', { id: `order-status-${order.id}`, class: 'status' }));
    row.when = li.appendChild(el('span', { class: 'when' }));
    row.payBy = li.appendChild(el('span', { id: `order-pay-by-${order.id}`, class: 'pay-by' }));
    page.orderRows.set(order.id, row);
    if (first) $('orders').prepend(li);
    else $('orders').append(li);
  }
  const item = page.items.get(order.item_id);
  row.what.textContent = `${item ? item.name : `Item ${order.item_id}`} × ${order.quantity}`;
  row.status.textContent = order.status;
  row.status.dataset.status = order.status;
  row.when.textContent = ` · bought ${formatTime(order.purchased_at)}`;
  row.payBy.hidden = !(order.status === 'reserved' && order.pay_by);
  row.order = order;
  updatePayBy(row, Date.now());
}

/** A reservation's deadline and the time left to pay, counting down. */
function updatePayBy(row, now) {
  const { order } = row;
  if (order.status !== 'reserved' || !order.pay_by) return;
  const left = (Date.parse(order.pay_by) - now) / 1000;
  const until = ` · pay by ${formatTime(order.pay_by)}`;
  row.payBy.textContent = left > 0 ? `${until} (${formatDuration(left)} left)` : `${until} (time is up)`;
}

async function loadOrders() {
  if (!page.token) return;
  let answer;
  try {
    answer = await api('GET', '/orders?per_page=20');
  } catch (error) {
    report(error);
    return;
  }
  const listed = new Set(answer.data.map((order) => order.id));
  for (const [id, row] of page.orderRows) {
    if (!listed.has(id)) {
      row.li.remove();
      page.orderRows.delete(id);
    }
  }
  for (const order of answer.data) showOrder(order, false);
  // The API's order (newest first, pending before persisted) is the list's.
  for (const order of answer.data) $('orders').append(page.orderRows.get(order.id).li);
  $('orders-empty').hidden = answer.data.length > 0;
}

/** Reads the orders each second while one is still pending, ORDER_POLLS times at most. */
function followOrders() {
  clearTimeout(page.orderPoll);
  let polls = 0;
  const step = async () => {
    polls += 1;
    await loadOrders();
    const pending = [...page.orderRows.values()].some((row) => row.status.dataset.status === 'pending');
    if (pending && polls < ORDER_POLLS && page.token) page.orderPoll = setTimeout(step, 1000);
  };
  page.orderPoll = setTimeout(step, 1000);
}

// ---- the clock -------------------------------------------------------------------

/** Four times a second: countdowns, a pass's time left, and a sale that just opened. */
function tick() {
  const now = Date.now();
  for (const id of page.items.keys()) updateCard(id);
  for (const row of page.orderRows.values()) updatePayBy(row, now);
}

// ---- start -----------------------------------------------------------------------

function start() {
  $('login-form').addEventListener('submit', login);
  $('register-form').addEventListener('submit', register);
  $('logout').addEventListener('click', logout);
  $('refresh-items').addEventListener('click', async () => {
    clearMessages();
    await loadItems();
    if (page.token) await restoreTickets();
  });
  $('refresh-orders').addEventListener('click', () => {
    clearMessages();
    loadOrders();
  });
  setInterval(tick, TICK_MS);
  if (page.token) signedIn(null);
  else loadItems();
}

start();
