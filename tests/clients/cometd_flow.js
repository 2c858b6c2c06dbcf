// The `cometd` npm client with cometd-nodejs-client, long-polling only:
// OAuth login and REST writes by fetch, CDC and a replayed PushTopic by CometD.
'use strict';

require('cometd-nodejs-client').adapt();
const lib = require('cometd');
const { collector, run } = require('./common');

async function rest(cfg, token, method, path, body) {
  const response = await fetch(`${cfg.url}/services/data/v${cfg.version}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// Salesforce's Replay extension is not part of cometd-js: a client adds it.
function replayExtension(replays) {
  return {
    outgoing(message) {
      if (message.channel === '/meta/subscribe' && message.subscription in replays) {
        message.ext = message.ext || {};
        message.ext.replay = { [message.subscription]: replays[message.subscription] };
      }
      return message;
    },
  };
}

function promised(fn) {
  return new Promise((resolve, reject) => {
    fn((reply) => (reply.successful ? resolve(reply) : reject(new Error(JSON.stringify(reply)))));
  });
}

run(async (cfg) => {
  const form = new URLSearchParams({
    grant_type: 'password', username: cfg.username, password: cfg.password,
  });
  const login = await (await fetch(`${cfg.url}/services/oauth2/token`, {
    method: 'POST', body: form,
  })).json();
  const token = login.access_token;

  const topicName = `Cd${cfg.tag}`.slice(0, 25);
  await rest(cfg, token, 'POST', '/sobjects/PushTopic', {
    Name: topicName,
    Query: `SELECT Id, LastName FROM Contact WHERE LastName = 'Cometd-${cfg.tag}'`,
    ApiVersion: Number(cfg.version),
  });
  const before = await rest(cfg, token, 'POST', '/sobjects/Contact', {
    LastName: `Cometd-${cfg.tag}`,
  });

  const cometd = new lib.CometD();
  cometd.unregisterTransport('websocket');
  cometd.unregisterTransport('callback-polling');
  const topicChannel = `/topic/${topicName}`;
  cometd.registerExtension('replay', replayExtension({ [topicChannel]: -2 }));
  cometd.configure({
    url: `${login.instance_url}/cometd/${cfg.version}`,
    requestHeaders: { Authorization: `Bearer ${token}` },
    appendMessageTypeToURL: false,
    logLevel: 'warn',
  });
  const handshake = await promised((cb) => cometd.handshake(cb));
  const topicEvents = collector(2, 20000, 'PushTopic events');
  const changes = collector(2, 20000, 'change events');
  await promised((cb) => cometd.subscribe(topicChannel, (m) => topicEvents.push(m), cb));
  await promised((cb) => cometd.subscribe('/data/ContactChangeEvent', (m) => changes.push(m), cb));

  const created = await rest(cfg, token, 'POST', '/sobjects/Contact', {
    LastName: `Cometd-${cfg.tag}`, FirstName: 'Live',
  });
  await rest(cfg, token, 'DELETE', `/sobjects/Contact/${created.body.id}`);
  const topic = await topicEvents.done;
  const cdc = await changes.done;
  const transport = cometd.getTransport().type;
  await new Promise((resolve) => cometd.disconnect(resolve));
  return {
    transport,
    clientId: handshake.clientId,
    topic: topic.map((m) => ({ type: m.data.event.type, id: m.data.sobject.Id })),
    expectedTopicIds: [before.body.id, created.body.id],
    changes: cdc.map((m) => ({
      type: m.data.payload.ChangeEventHeader.changeType,
      ids: m.data.payload.ChangeEventHeader.recordIds,
    })),
    expectedChangeId: created.body.id,
  };
});
