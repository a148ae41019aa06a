DROP TABLE mission_token_usage;
DROP TABLE mission_schedule;
