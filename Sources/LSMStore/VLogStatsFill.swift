import KVIMR

extension Engine {
    /// The value-log fields vlog-core owns (segments, sizes, values written, checksum errors);
    /// the write amplification also counts the records written (values are written once more,
    /// to the log, instead of to the WAL and every level).
    func fillValueLogStats(_ st: inout LSMStats, _ v: Version) {
        st.vlog.segments = v.segments.count
        var total: UInt64 = 0
        for n in v.segments.keys { total += kvimr.size(n) ?? 0 }
        st.vlog.totalBytes = total
        st.vlog.valuesWritten = vlog.valuesWritten.value
        st.vlog.valueBytesWritten = vlog.valueBytesWritten.value
        st.vlog.checksumErrors = vlog.checksumErrors.value
        if st.userBytesWritten > 0 {
            st.writeAmplification += Double(st.vlog.valueBytesWritten) / Double(st.userBytesWritten)
        }
    }
}
