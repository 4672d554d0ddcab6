"""Device results as numpy arrays.

A result buffer is mapped when the device allows it, else copied through a
host-visible staging buffer (``DeviceArray``'s own read-back fails on Vulkan
drivers that need 4096-byte aligned host pointers, lavapipe among them).
"""

from __future__ import annotations

import iree.runtime as ireert
import numpy as np


def to_host(device: ireert.HalDevice, view: ireert.HalBufferView) -> np.ndarray:
    """Copy a result buffer view into a numpy array (map if possible, else stage)."""
    dtype = ireert.HalElementType.map_to_dtype(view.element_type)
    shape = list(view.shape)
    buffer = view.get_buffer()
    visible = int(ireert.MemoryType.HOST_VISIBLE)
    scoped = int(ireert.BufferUsage.MAPPING_SCOPED)
    if int(buffer.memory_type()) & visible == visible and int(buffer.allowed_usage()) & scoped == scoped:
        return np.array(view.map().asarray(shape, dtype), copy=True)
    staging = device.allocator.allocate_buffer(
        memory_type=int(ireert.MemoryType.HOST_LOCAL | ireert.MemoryType.DEVICE_VISIBLE),
        allowed_usage=int(ireert.BufferUsage.TRANSFER_TARGET | ireert.BufferUsage.MAPPING_SCOPED),
        allocation_size=buffer.byte_length(),
    )
    semaphore = device.create_semaphore(0)
    device.queue_copy(
        buffer,
        staging,
        wait_semaphores=ireert.HalFence.create_at(semaphore, 0),
        signal_semaphores=ireert.HalFence.create_at(semaphore, 1),
    )
    ireert.HalFence.create_at(semaphore, 1).wait()
    return np.array(staging.map().asarray(shape, dtype), copy=True)
