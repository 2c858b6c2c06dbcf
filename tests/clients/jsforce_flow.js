// jsforce 3 against the emulator: SOAP login, CRUD, upsert, paged query,
// Collections, and Streaming (PushTopic with the Replay extension, and CDC).
'use strict';

const jsforce = require('jsforce');
const { StreamingExtension } = require('jsforce/lib/api/streaming');
const { collector, run } = require('./common');

const PAGE_ROWS = 2050;

run(async (cfg) => {
  const conn = new jsforce.Connection({ loginUrl: cfg.url, version: cfg.version });
  const login = await conn.login(cfg.username, cfg.password);
  const result = { userId: login.id, instanceUrl: conn.instanceUrl };

  const contacts = conn.sobject('Contact');
  const created = await contacts.create({ FirstName: 'Js', LastName: `Force-${cfg.tag}` });
  const fetched = await contacts.retrieve(created.id);
  await contacts.update({ Id: created.id, Title: 'Updated by jsforce' });
  const updated = await contacts.retrieve(created.id);
  const upsertNew = await contacts.upsert(
    { LastName: 'Upserted', Platform_Id__c: `js-${cfg.tag}` }, 'Platform_Id__c');
  const upsertOld = await contacts.upsert(
    { Title: 'again', Platform_Id__c: `js-${cfg.tag}` }, 'Platform_Id__c');
  const deleted = await contacts.destroy(created.id);
  Object.assign(result, {
    created,
    fetchedName: fetched.Name,
    updatedTitle: updated.Title,
    upsertCreated: [upsertNew.created, upsertOld.created],
    deleted,
  });

  // Arrays go through sObject Collections, 200 records per call.
  const rows = Array.from({ length: PAGE_ROWS }, (_, i) => ({
    LastName: `Page-${cfg.tag}`, Title: String(i),
  }));
  const inserted = await contacts.create(rows, { allOrNone: true, allowRecursive: true });
  result.collectionSuccesses = inserted.filter((r) => r.success).length;
  const soql = `SELECT Id, Title FROM Contact WHERE LastName = 'Page-${cfg.tag}'`;
  const firstPage = await conn.query(soql, { autoFetch: false });
  const everything = await conn.query(soql, { autoFetch: true, maxFetch: 10000 });
  result.query = {
    totalSize: firstPage.totalSize,
    firstPage: firstPage.records.length,
    done: firstPage.done,
    fetched: everything.records.length,
  };
  const all = await conn.query(
    `SELECT Id, IsDeleted FROM Contact WHERE Id = '${created.id}'`, { scanAll: true });
  result.queryAllDeleted = all.records.map((r) => r.IsDeleted);

  // Streaming: a PushTopic replayed from -2 through jsforce's Replay extension.
  const topicName = `Js${cfg.tag}`.slice(0, 25);
  await conn.sobject('PushTopic').create({
    Name: topicName,
    Query: `SELECT Id, Name FROM Contact WHERE LastName = 'Stream-${cfg.tag}'`,
    ApiVersion: Number(cfg.version),
    NotifyForFields: 'All',
  });
  const early = await contacts.create({ LastName: `Stream-${cfg.tag}` });
  const topicChannel = `/topic/${topicName}`;
  const topicEvents = collector(2, 20000, 'PushTopic events');
  const topicClient = conn.streaming.createClient([
    new StreamingExtension.Replay(topicChannel, -2),
  ]);
  const topicSub = topicClient.subscribe(topicChannel, (msg) => topicEvents.push(msg));
  const cdcEvents = collector(1, 20000, 'change events');
  const cdcClient = conn.streaming.createClient([
    new StreamingExtension.Replay('/data/ContactChangeEvent', -1),
  ]);
  const cdcSub = cdcClient.subscribe('/data/ContactChangeEvent', (msg) => {
    if (msg.payload.ChangeEventHeader.changeType === 'UPDATE') {
      cdcEvents.push(msg);
    }
  });
  await topicSub;
  await cdcSub;
  await contacts.update({ Id: early.id, Title: 'streamed' });
  const [createdEvent, updatedEvent] = await topicEvents.done;
  const [change] = await cdcEvents.done;
  result.topic = {
    types: [createdEvent.event.type, updatedEvent.event.type],
    ids: [createdEvent.sobject.Id, updatedEvent.sobject.Id],
    replayIds: [createdEvent.event.replayId, updatedEvent.event.replayId],
    expectedId: early.id,
  };
  result.change = change.payload.ChangeEventHeader;
  topicClient.disconnect();
  cdcClient.disconnect();
  return result;
});
