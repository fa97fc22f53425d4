"""`rlsys check-sync` on the CPU: real gloo ranks in local processes move model-shaped
tensors bucket by bucket, every checksum matches, and a peer that never receives makes the
sender raise the sync's TimeoutError instead of hanging."""

from rlsys.transport.sync_check import check_sync


def test_gloo_check_moves_every_tensor_and_times_out_instead_of_hanging():
    result = check_sync("gloo", ranks=3, total_mb=6, bucket_mb=2, timeout_s=3, repeats=2)
    assert result["bit_identical"] and result["tensors_on"] == "cpu"
    assert result["bytes"] >= 6 * 2**20 and result["buckets"] >= 3
    assert result["sync_seconds"] > 0 and result["raw_broadcast_seconds"] > 0
    assert result["timeout"].startswith("raised after") and "did not finish within 3s" in result["timeout"]
