// The filesystem layer: see FileSystem.swift (to be written).
