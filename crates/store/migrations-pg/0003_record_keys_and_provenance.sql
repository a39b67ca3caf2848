-- Several sources per person. A person keeps the key under which roster first knew them; these
-- columns remember the key of the person's record in each source (a contractor database's
-- number, a new worker ID after a conversion) and which source supplied each attribute.

-- JSON object: source name -> record key, for the sources whose record key differs from the
-- person's key ({} for a person known by one key everywhere).
ALTER TABLE persons ADD COLUMN record_keys TEXT NOT NULL DEFAULT '{}';
-- JSON object: person attribute -> the source that supplied its value in the last applied run
-- ({} for a person with records from one source).
ALTER TABLE persons ADD COLUMN provenance TEXT NOT NULL DEFAULT '{}';
