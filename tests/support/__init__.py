"""Test support: the simulator `World`, fake clocks and sandbox settings (tests import these,
never `conftest`)."""

from tests.support.clocks import FakeClock, FakeTime
from tests.support.world import NOW, TODAY, World, sandbox_environ

__all__ = ["NOW", "TODAY", "FakeClock", "FakeTime", "World", "sandbox_environ"]
