-- Up Migration

-- usage_events.event_id compares byte by byte (collation "C") instead of in the database's
-- default collation:
-- - the deduplication key no longer depends on the operating system's locale data. A B-tree on
--   text in a libc or ICU collation is sorted by that library's rules; when an OS upgrade changes
--   them (glibc 2.28 did, for most locales), PostgreSQL finds keys in the wrong place, and a
--   unique index can then admit a second copy of an event: counted twice, billed twice.
-- - comparisons cost less: building the primary key over 868,000 rows of `npm run bench:ingest`'s
--   shape took 1.2 s with event_id in ICU en-US, 0.8–1.0 s in libc C.UTF-8, 0.6–0.7 s in C
--   (issue 17). An insert compares far less than a sort does: on this repository's C.UTF-8
--   clusters the bench's end-to-end figures moved within their noise.
-- Equality is unchanged: in every deterministic collation two texts are equal only if their
-- bytes are. Only the order changes where it depends on the locale: the tie-break of a `latest`
-- meter between events at the same microsecond is the greater id in byte order, on every server.
-- The column keeps its type, so the table is not rewritten; the primary key is rebuilt.
ALTER TABLE usage_events ALTER COLUMN event_id TYPE text COLLATE "C";

-- Down Migration

ALTER TABLE usage_events ALTER COLUMN event_id TYPE text COLLATE "default";
