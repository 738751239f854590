-- A bad migration, run by the pg-pitr-sql.toml drill as ONE transaction.
-- Meant to scrub a few test rows, it lost its WHERE clause's second half:
-- it blanks the payload of every fourth row and deletes the next one.
UPDATE firedrill_ledger SET payload = NULL WHERE seq % 4 = 0;
DELETE FROM firedrill_ledger WHERE seq % 4 = 1;
