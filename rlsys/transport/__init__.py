"""Moving weights between processes with torch.distributed only (no Ray): the bucketed
broadcast plan, packing, checksums, process groups, and the transport check."""
