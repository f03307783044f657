#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A broadcast event with a generation counter: waiters read `generation`, check their
/// condition (under whatever lock guards it) and then `wait(past:)`; every `broadcast()` bumps
/// the generation, so a wake-up between the check and the wait is never lost.
/// (`Synchronization.Mutex` has no condition variable; this wraps pthreads and guards only
/// its own counter.)
package final class Signal: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var gen: UInt64 = 0

    package init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }
    deinit {
        pthread_cond_destroy(cond); pthread_mutex_destroy(mutex)
        cond.deallocate(); mutex.deallocate()
    }

    package var generation: UInt64 {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        return gen
    }

    package func broadcast() {
        pthread_mutex_lock(mutex)
        gen &+= 1
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Waits until the generation moves past `g` or `timeoutMillis` pass.
    package func wait(past g: UInt64, timeoutMillis: Int = 200) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var ns = Int(now.tv_nsec) + timeoutMillis * 1_000_000
        var deadline = timespec()
        deadline.tv_sec = now.tv_sec + ns / 1_000_000_000
        ns %= 1_000_000_000
        deadline.tv_nsec = ns
        while gen == g {
            if pthread_cond_timedwait(cond, mutex, &deadline) != 0 { break }
        }
    }
}
