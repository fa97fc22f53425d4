import pytest


@pytest.fixture(scope="package")
def local_ray():
    """One local Ray for the package's tests, on 127.0.0.1 (see tests/conftest.py)."""
    import ray

    from rlsys.config import RayConfig
    from rlsys.distributed.cluster import init_ray

    init_ray(RayConfig(num_cpus=4))
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    yield ray
    ray.shutdown()
