/**
 * Where new buffers are created under `initOnDevice(…, { includeBuffers: true })`. Parameters use
 * lib/nn's init device (`setDefaultInitDevice`); lib/nn has no buffer init device yet, so this
 * flag is consulted only by modules that read it (until lib/nn grows one).
 * @module
 */
import type { Device } from "../tensor/mod.ts";

let buffers: Device = "cpu";

/** The device new buffers are created on. */
export function getBufferInitDevice(): Device {
  return buffers;
}

/** Set where new buffers are created; returns the previous setting. */
export function setBufferInitDevice(device: Device): Device {
  const prev = buffers;
  buffers = device;
  return prev;
}
