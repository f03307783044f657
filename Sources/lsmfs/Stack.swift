import IMRDisk
import KVIMR
import LSMStore
import LSMFS

/// The one place that wires the layers together: image → KVIMR → LSMStore → FileSystem.
enum Stack {
    /// The track-allocation policies this build implements (the IMR issue adds the others).
    static let policies = KVIMRPolicyName.implemented.map(\.rawValue)

    /// A one-line reason when `name` is not a policy mkfs/mount can use.
    static func checkPolicy(_ name: String) -> String? {
        do throws(KVIMRError) { _ = try KVIMRPolicyName.policy(named: name); return nil } catch { return error.message }
    }

    /// Creates a formatted image holding an empty filesystem, and closes it cleanly.
    static func makeFilesystem(image: String, size: UInt64, policy: String, force: Bool) throws {
        let device = try wrap { () throws(DeviceError) in
            try ImageTrackDevice.create(path: image, size: size, policy: policy, overwrite: force)
        }
        do {
            try wrap { () throws(KVIMRError) in try KVIMR.format(device: device) }
            let kvimr = try wrap { () throws(KVIMRError) in try KVIMR(device: device) }
            let store = try wrap { () throws(LSMError) in try LSMStore(kvimr: kvimr) }
            try FileSystem.format(store: store)
            try wrap { () throws(LSMError) in try store.close() }
        } catch {
            try? device.close()
            throw error
        }
    }

    /// Opens the whole stack on an existing image.
    static func open(image: String, readOnly: Bool, policy: String?, syncInterval: Double) throws -> FileSystem {
        let device = try wrap { () throws(DeviceError) in try ImageTrackDevice.open(path: image, readOnly: readOnly) }
        do {
            let kvimr = try wrap { () throws(KVIMRError) in try KVIMR(device: device, policy: policy, readOnly: readOnly) }
            let store = try wrap { () throws(LSMError) in try LSMStore(kvimr: kvimr, readOnly: readOnly) }
            var options = FSOptions()
            options.readOnly = readOnly
            options.syncInterval = syncInterval
            do {
                return try FileSystem(store: store, options: options)
            } catch {
                try? store.close()   // closes KVIMR and the device too
                throw CLIError(describe(error))
            }
        } catch {
            try? device.close()   // a no-op error if the store already closed it
            throw error
        }
    }

    /// Runs `body`, turning a layer's typed error into a one-line CLI error.
    static func wrap<T, E: Error>(_ body: () throws(E) -> T) throws -> T {
        do { return try body() } catch { throw CLIError(describe(error)) }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? CLIError { return e.description }
        if let e = error as? DeviceError { return e.message }
        if let e = error as? KVIMRError { return e.message }
        if let e = error as? LSMError { return e.message }
        return String(describing: error)
    }
}
