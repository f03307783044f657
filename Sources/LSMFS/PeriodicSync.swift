import Glibc
import Synchronization

/// A background thread that runs `action` every `interval` seconds until `stop()`.
final class PeriodicSync: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)
    private let interval: Double
    private let action: @Sendable () -> Void

    init(interval: Double, action: @escaping @Sendable () -> Void) {
        self.interval = interval
        self.action = action
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let me = Unmanaged<PeriodicSync>.fromOpaque(arg!).takeRetainedValue()
            me.run()
            return nil
        }, box)
        if rc == 0 {
            thread.withLock { $0 = tid }
        } else {
            Unmanaged<PeriodicSync>.fromOpaque(box).release()
            fsLog.error("cannot start the periodic sync thread (errno \(rc)); syncing only on fsync and unmount")
        }
    }

    private func run() {
        let slice = 0.05
        var waited = 0.0
        while !stopping.load(ordering: .acquiring) {
            var ts = timespec(tv_sec: 0, tv_nsec: Int(slice * 1e9))
            nanosleep(&ts, nil)
            waited += slice
            if waited >= interval && !stopping.load(ordering: .acquiring) {
                waited = 0
                action()
            }
        }
    }

    /// Stops the thread and waits for it (idempotent).
    func stop() {
        stopping.store(true, ordering: .releasing)
        if let tid = thread.withLock({ t -> pthread_t? in defer { t = nil }; return t }) {
            pthread_join(tid, nil)
        }
    }
}
