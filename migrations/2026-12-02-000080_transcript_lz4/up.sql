-- A run's transcript is rewritten by every snapshot of its day (one per turn), and it
-- is TOASTed once it passes ~2 kB: compress it with lz4 instead of pglz (issue 13).
-- lz4 compresses and decompresses faster at a similar size (measured here: a 15 kB
-- transcript stored in 3.1 kB either way; 81–100 µs per update against 170–177 µs).
-- Rows already stored keep their pglz values until they are next written; both read
-- back the same.
ALTER TABLE persona_runs ALTER COLUMN transcript SET COMPRESSION lz4;
