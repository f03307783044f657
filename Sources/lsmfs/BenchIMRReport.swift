import Glibc
import KVIMR

/// The results of `lsmfs bench imr` as a table, CSV, an SVG chart and the ratio line.
struct BenchIMRReport {
    let results: [BenchIMRResult]

    static let columns = ["usage", "drive_mib", "dataset_fraction", "value", "policy", "fill_ops_per_sim_s", "overwrite_ops_per_sim_s",
                          "write_ops_per_sim_s", "read_ops_per_sim_s", "rmw_ops", "merged_rmw", "rmw_mib",
                          "dev_bytes_per_user_byte", "usage_peak_pct", "usage_mean_pct", "top_usage_peak_pct", "top_usage_mean_pct"]

    func row(_ r: BenchIMRResult) -> [String] {
        [r.config.usage, String(r.config.imageBytes >> 20), imrFmt(r.config.datasetFraction, 2), String(r.config.valueSize), r.config.policy.rawValue,
         imrFmt(r.fill.opsPerSimSecond, 0), imrFmt(r.overwrite.opsPerSimSecond, 0),
         imrFmt(r.writes.opsPerSimSecond, 0), imrFmt(r.read.opsPerSimSecond, 0),
         String(r.driveRmwOps + r.hostRmwOps), String(r.mergedRmwOps),
         imrFmt(Double(r.rmwBytes) / 1048576, 1), imrFmt(r.writeAmp, 2),
         imrFmt(r.peakUsage * 100, 0), imrFmt(r.meanUsage * 100, 0),
         imrFmt(r.peakTopUsage * 100, 0), imrFmt(r.meanTopUsage * 100, 0)]
    }

    func csv() -> String {
        ([BenchIMRReport.columns.joined(separator: ",")] + results.map { row($0).joined(separator: ",") })
            .joined(separator: "\n")
    }

    static let breakdownColumns = ["usage", "value", "policy", "category", "ops", "mib", "busy_ms", "share_pct",
                                   "seek_ms", "rotation_ms", "transfer_ms"]

    /// Per run, where the headline phase's simulated time went (one row per category, then
    /// "unattributed" when the categories do not add up to the phase's busy time).
    func breakdownRows() -> [[String]] {
        var rows: [[String]] = []
        for r in results {
            let total = Double(max(r.headline.simNanos, 1))
            let b = r.breakdown
            func ms(_ ns: UInt64) -> String { imrFmt(Double(ns) / 1e6, 0) }
            for cat in b.sortedCategories {
                let e = b.entries[cat]!
                rows.append([r.config.usage, String(r.config.valueSize), r.config.policy.rawValue, cat,
                             String(e.ops), imrFmt(Double(e.bytes) / 1048576, 1), ms(e.busyNanos),
                             imrFmt(Double(e.busyNanos) / total * 100, 1),
                             ms(e.seekNanos), ms(e.rotationNanos), ms(e.transferNanos)])
            }
            let rest = Int64(r.headline.simNanos) - Int64(b.totalBusyNanos)
            if abs(Double(rest)) / total > 0.001 {
                rows.append([r.config.usage, String(r.config.valueSize), r.config.policy.rawValue, "unattributed",
                             "", "", imrFmt(Double(rest) / 1e6, 0), imrFmt(Double(rest) / total * 100, 1), "", "", ""])
            }
        }
        return rows
    }

    func breakdownCSV() -> String {
        ([BenchIMRReport.breakdownColumns.joined(separator: ",")] + breakdownRows().map { $0.joined(separator: ",") })
            .joined(separator: "\n")
    }

    /// The breakdown as a compact Markdown table: one row per run, one column per category
    /// group, each cell "share% (simulated seconds)".
    func breakdownTable() -> String {
        let groups = ["write WAL", "write L0", "write L1", "write L2+", "write other", "RMW drive", "RMW merged",
                      "read", "checkpoint"]
        func group(_ cat: String) -> String {
            if groups.contains(cat) { return cat }
            if cat.hasPrefix("write L") { return "write L2+" }
            if cat.hasPrefix("write") { return "write other" }
            if cat.hasPrefix("read") { return "read" }
            return cat
        }
        let head = ["usage", "value", "policy", "phase sim-s"] + groups + ["seek", "rotation", "transfer"]
        var lines = ["| " + head.joined(separator: " | ") + " |", "|" + String(repeating: " --- |", count: head.count)]
        for r in results {
            let total = Double(max(r.headline.simNanos, 1))
            var sums: [String: UInt64] = [:]
            var seek: UInt64 = 0, rot: UInt64 = 0, xfer: UInt64 = 0
            for (cat, e) in r.breakdown.entries {
                sums[group(cat), default: 0] += e.busyNanos
                seek += e.seekNanos; rot += e.rotationNanos; xfer += e.transferNanos
            }
            func pct(_ ns: UInt64) -> String { imrFmt(Double(ns) / total * 100, 1) + "%" }
            var cells = [r.config.usage, String(r.config.valueSize), r.config.policy.rawValue,
                         imrFmt(Double(r.headline.simNanos) / 1e9, 1)]
            cells += groups.map { pct(sums[$0] ?? 0) }
            cells += [pct(seek), pct(rot), pct(xfer)]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    /// A Markdown table (also readable on a terminal).
    func table() -> String {
        let head = ["usage", "drive MiB", "dataset", "value", "policy", "fillrandom", "overwrite", "fill+overwrite", "readrandom",
                    "RMW tracks", "merged RMW", "RMW MiB", "dev B / user B", "peak use", "mean use",
                    "peak top use", "mean top use"]
        var lines = ["| " + head.joined(separator: " | ") + " |",
                     "|" + String(repeating: " --- |", count: head.count)]
        for r in results {
            var cells = row(r)
            for i in 13...16 { cells[i] += "%" }
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    /// kvimr's headline write throughput (fill+overwrite at low usage, overwrite at high usage)
    /// over the best of two-phase and three-phase, geometric mean over the value sizes; nil when
    /// a policy is missing.
    func ratio(usage: String) -> Double? {
        var logSum = 0.0, n = 0
        for v in Set(results.map(\.config.valueSize)).sorted() {
            func ops(_ p: KVIMRPolicyName) -> Double? {
                results.first { $0.config.usage == usage && $0.config.valueSize == v && $0.config.policy == p }?.headline.opsPerSimSecond
            }
            guard let k = ops(.kvimr) else { continue }
            let base = [ops(.twoPhase), ops(.threePhase)].compactMap { $0 }.max()
            guard let b = base, b > 0, k > 0 else { continue }
            logSum += log(k / b); n += 1
        }
        return n == 0 ? nil : exp(logSum / Double(n))
    }

    func ratioLine() -> String {
        let w = ratio(usage: "low").map { imrFmt($0, 2) + "x" } ?? "n/a"
        let h = ratio(usage: "high").map { imrFmt($0, 2) + "x" } ?? "n/a"
        return "kvimr/best-baseline: write-intensive \(w), high-usage \(h)"
    }

    /// Grouped bars: write throughput per (usage, value size), one bar per policy.
    func svg() -> String {
        let groups = results.reduce(into: [String]()) { acc, r in
            let g = "\(r.config.usage) usage, \(r.config.valueSize) B"
            if !acc.contains(g) { acc.append(g) }
        }
        let policies = results.reduce(into: [KVIMRPolicyName]()) { if !$0.contains($1.config.policy) { $0.append($1.config.policy) } }
        let colours = ["#9e9e9e", "#4e79a7", "#f28e2b", "#e15759"]
        let barW = 26.0, gap = 30.0, left = 70.0, top = 40.0, plotH = 260.0
        let groupW = Double(policies.count) * barW + gap
        let width = left + Double(groups.count) * groupW + 20
        let maxV = max(results.map(\.headline.opsPerSimSecond).max() ?? 1, 1)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(top + plotH + 90))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<text x=\"\(left)\" y=\"20\" font-size=\"14\">lsmfs bench imr: writes per simulated second (low usage: fillrandom+overwrite; high usage: overwrite)</text>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top + plotH)\" x2=\"\(width - 10)\" y2=\"\(top + plotH)\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let v = maxV * Double(i) / 4, y = top + plotH - plotH * Double(i) / 4
            s += "<text x=\"\(left - 6)\" y=\"\(imrFmt(y + 4, 1))\" text-anchor=\"end\">\(imrFmt(v, 0))</text>\n"
        }
        for (gi, g) in groups.enumerated() {
            let x0 = left + Double(gi) * groupW + gap / 2
            for (pi, p) in policies.enumerated() {
                guard let r = results.first(where: { "\($0.config.usage) usage, \($0.config.valueSize) B" == g && $0.config.policy == p }) else { continue }
                let h = plotH * r.headline.opsPerSimSecond / maxV
                s += "<rect x=\"\(imrFmt(x0 + Double(pi) * barW, 1))\" y=\"\(imrFmt(top + plotH - h, 1))\" width=\"\(barW - 2)\" height=\"\(imrFmt(h, 1))\" fill=\"\(colours[pi % colours.count])\"/>\n"
            }
            s += "<text x=\"\(imrFmt(x0 + Double(policies.count) * barW / 2, 1))\" y=\"\(top + plotH + 16)\" text-anchor=\"middle\">\(g)</text>\n"
        }
        for (pi, p) in policies.enumerated() {
            let x = left + Double(pi) * 110
            s += "<rect x=\"\(imrFmt(x, 1))\" y=\"\(top + plotH + 40)\" width=\"12\" height=\"12\" fill=\"\(colours[pi % colours.count])\"/>"
            s += "<text x=\"\(imrFmt(x + 16, 1))\" y=\"\(top + plotH + 50)\">\(p.rawValue)</text>\n"
        }
        s += "<text x=\"\(left)\" y=\"\(top + plotH + 78)\">\(ratioLine())</text>\n</svg>\n"
        return s
    }
}

/// Writes `text` to `path` (replacing it).
func imrWriteTextFile(_ path: String, _ text: String) throws {
    guard let f = fopen(path, "w") else { throw CLIError("cannot write \(path): errno \(errno)") }
    defer { fclose(f) }
    let bytes = Array(text.utf8)
    guard fwrite(bytes, 1, bytes.count, f) == bytes.count else { throw CLIError("short write to \(path)") }
}
