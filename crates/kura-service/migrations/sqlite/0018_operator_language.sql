-- The language an operator's mail is written in (a new support request, an approval
-- waiting for them): set when the account is created and whenever its owner switches
-- the console's language. Japanese unless told otherwise: the service's home.
ALTER TABLE operator_accounts ADD COLUMN language TEXT NOT NULL DEFAULT 'ja';
