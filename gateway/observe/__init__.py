"""What operators see: the rejection log and its report."""
