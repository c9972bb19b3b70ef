-- The database user that wrote each gate result: on PostgreSQL and MariaDB the
-- server authenticated it, so an approval names who recorded it beyond doubt.
-- SQLite has no users: NULL.
ALTER TABLE gate_results ADD COLUMN db_user TEXT;
