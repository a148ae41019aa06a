DROP TABLE records;
DROP TABLE sync_changes;
