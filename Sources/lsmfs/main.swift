print("lsmfs")
