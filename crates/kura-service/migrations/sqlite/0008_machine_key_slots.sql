-- A machine's own key slot in its tenant's encrypted vault (unattended unlock by the
-- agent daemon): recorded by the service when the machine adds it, so that replacing it
-- or revoking the machine removes exactly that slot, whatever its label says.
ALTER TABLE machines ADD COLUMN key_slot_id TEXT;
