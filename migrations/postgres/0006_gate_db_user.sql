-- The database user that wrote each gate result (current_user): the server
-- authenticated it, so an approval names who recorded it beyond doubt.
ALTER TABLE gate_results ADD COLUMN db_user VARCHAR(255);
