"""Front ends: the ways mail reaches the policy (the SMTP proxy; the milter later)."""
