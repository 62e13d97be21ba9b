-- A user member is one person: email identifies them, unique per workspace
-- regardless of case (the store writes it lowercased; the index's NOCASE
-- holds it for anything written otherwise). Agents have none. Users created
-- before this migration have none until one is given.
ALTER TABLE members ADD COLUMN email TEXT CHECK (email IS NULL OR (kind = 'user' AND length(email) > 0));
CREATE UNIQUE INDEX members_email ON members (workspace_id, email COLLATE NOCASE) WHERE email IS NOT NULL;
