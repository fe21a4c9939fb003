"""Where accepted mail goes: a lockstep SMTP upstream or an fsynced Maildir."""
