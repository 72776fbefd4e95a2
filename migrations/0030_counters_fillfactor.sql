-- Up Migration

-- usage_counters' pages are filled to half by inserts, leaving the other half to updates (issue 17).
-- Every ingest transaction updates the counter row of each customer, meter and UTC day it holds
-- events for; an update stays on its row's page (a HOT update: no new primary-key entry, and the
-- old version is pruned by the next reader of the page) only if the page has room for the new
-- version. Full pages, and versions that concurrent transactions' snapshots still need, sent half
-- of the updates elsewhere: `npm run bench:ingest:writer` (8 × 1,000-event batches, 100
-- customers, 4 transactions in flight), per 40,000 counter updates:
--   fillfactor 100 (before): 45–53 % HOT, table 2.4–2.8 MB and primary key 48 kB for 100 live rows
--   fillfactor 70:           78 % HOT, 2.0 MB
--   fillfactor 50:           93–95 % HOT, 0.7–1.0 MB, primary key 32–40 kB
--   fillfactor 20:           98–99 % HOT, 0.5 MB
-- PostgreSQL's CPU per stored event moved within that bench's noise (10.40 and 9.88 µs before,
-- 10.05 and 9.45 after). 50 rather than 20: a day's rows stop changing when the day ends, and a
-- cold page keeps the room it was given; at 50 the counters take twice the pages of a full
-- table, one row per customer, meter and day, against hundreds or thousands of events a day of
-- 160–210 bytes each in usage_events.
-- Not rewritten: the setting applies to rows inserted from now on, which is each new day's.
ALTER TABLE usage_counters SET (fillfactor = 50);

-- Down Migration

ALTER TABLE usage_counters RESET (fillfactor);
