-- The database user that wrote each gate result (CURRENT_USER()): the server
-- authenticated it, so an approval names who recorded it beyond doubt.
-- Written to be run again (MySQL commits DDL).
ALTER TABLE gate_results ADD COLUMN IF NOT EXISTS db_user VARCHAR(255) NULL;
