/// Parses human sizes: `4096`, `512K`, `512M`, `2G`, `1T` (binary units; an optional trailing
/// `B` or `iB` is accepted, e.g. `2GiB`). Returns nil for anything else.
func parseSize(_ text: String) -> UInt64? {
    var s = Substring(text.trimmingCharacters(in: " \t"))
    guard !s.isEmpty else { return nil }
    let upper = s.uppercased()
    if upper.hasSuffix("IB") { s = s.dropLast(2) } else if upper.hasSuffix("B") { s = s.dropLast(1) }
    guard let last = s.last else { return nil }
    var shift: UInt64 = 0
    switch last {
    case "k", "K": shift = 10
    case "m", "M": shift = 20
    case "g", "G": shift = 30
    case "t", "T": shift = 40
    default: break
    }
    if shift != 0 { s = s.dropLast() }
    guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt64(s) else { return nil }
    let (v, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
    return overflow ? nil : v
}

func formatBytes(_ n: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n), i = 0
    while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
    if i == 0 { return "\(n) B" }
    let r = (v * 10).rounded() / 10
    return "\(r) \(units[i])"
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
