#if canImport(Glibc)
    import Glibc
#endif

/// The process's allocator policy for Rein's workloads, which allocate and free multi-megabyte
/// buffers (weight versions, gradient copies, activation arenas, sample and checkpoint buffers) on
/// many threads.
public enum ProcessMemory {
    /// Blocks of at least this many bytes come from `mmap` and go back to the system when freed.
    ///
    /// Not lower: oneDNN's `dnnl_sgemm` allocates its packing buffers on every call, up to about
    /// 550 KiB for the default model's products. Below the threshold they are reused from the
    /// allocator's arenas; above it each product paid a fresh `mmap`, its page faults and a TLB
    /// shoot-down on `munmap`. At 128 KiB that was a third of the sampler's time in the kernel and
    /// halved its speed (`rein bench model --parts sample`: 21–30K against 46–58K tokens/s, Intel
    /// model 207), for 2 MiB less peak RSS (`scripts/bench/memory.sh`).
    public static let largeBlockBytes = 640 << 10

    /// Makes glibc's `malloc` serve blocks of ``largeBlockBytes`` or more from `mmap` and unmap them
    /// when freed. By default glibc raises that threshold (up to 32 MiB) each time such a block is
    /// freed, after which multi-megabyte blocks come from the per-thread arenas and, once freed,
    /// stay resident: on a learner with two workers that was about 140 MB of peak RSS (issue 14).
    /// Call once, at start-up, before the threads start (the command-line tool does). No effect
    /// elsewhere than glibc.
    public static func returnFreedLargeBlocks() {
        #if canImport(Glibc)
            // <malloc.h> is not part of Swift's Glibc module: look mallopt up in the C library.
            typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
            let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
            _ = unsafeBitCast(symbol, to: Mallopt.self)(mmapThreshold, Int32(largeBlockBytes))
        #endif
    }
}
