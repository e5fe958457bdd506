// Small typed errors. Every message says what went wrong, where (op, shape, file or flag), and what to do.

/** Base class of every error webgpu-nn throws on purpose. */
export class WebGpuNnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** No WebGPU adapter could be found or opened. */
export class NoAdapterError extends WebGpuNnError {}

/** Tensor shapes that do not fit an op. The message names the op and the shapes. */
export class ShapeError extends WebGpuNnError {}

/** A value an op, layer, optimizer or kernel cannot take: data of the wrong length or type, an option out of range. */
export class DataError extends WebGpuNnError {}

/** A tensor or buffer larger than the adapter allows (maxStorageBufferBindingSize, maxBufferSize). */
export class LimitError extends WebGpuNnError {}

/** WGSL that failed to compile; the message names the kernel and gives the compiler's messages. */
export class ShaderCompileError extends WebGpuNnError {}

/** A WebGPU validation error, out-of-memory or internal error, naming the labelled kernel or buffer. */
export class GpuError extends WebGpuNnError {}

/** A kernel variant that does not exist, or cannot run on this adapter or these sizes. Names the op and the variant. */
export class VariantError extends WebGpuNnError {}

/** An object used in a state that does not allow it: no default Gpu yet, a disposed tensor, a destroyed runtime. */
export class StateError extends WebGpuNnError {}

/** The GPU device was lost (driver reset, device destroyed). */
export class DeviceLostError extends WebGpuNnError {}

/** A bad command-line flag or value. The message names the flag. */
export class UsageError extends WebGpuNnError {}

/** A file that is missing, corrupt or does not match (IDX, PNG, checkpoint). The message names the file. */
export class FileFormatError extends WebGpuNnError {}

/**
 * An output location that cannot be used: not a directory, no permission, a read-only or full file system,
 * a file of someone else's in the way, or a directory another run is writing to. Names the path and the reason.
 */
export class OutputError extends WebGpuNnError {}

/**
 * A bug in webgpu-nn, found by a check of something that cannot happen (an accuracy above 100%, a negative
 * loss, a confusion matrix that does not add up): the message says what, and asks for a report.
 */
export class InternalError extends WebGpuNnError {
  constructor(message: string) {
    super(`${message}. This is a bug in webgpu-nn, not a fault of yours: please report it with the command you ran and this output.`);
  }
}
