-- The sources each person has a record of, so that a daily run can read who is known where
-- without reading (and decoding) every person's records: a plan uses a stored record only where
-- the run read none from its source. JSON array of source names, sorted ([] for none).
ALTER TABLE persons ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
UPDATE persons SET sources = (SELECT json_group_array(key) FROM json_each(persons.records));
