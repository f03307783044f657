// A small db_bench-style harness for LevelDB 1.23 (Debian libleveldb-dev): fillseq, fillrandom,
// overwrite, readrandom, readseq, seekrandom with the same key scheme, value sizes, Bloom bits
// and cache size as `lsmfs bench kv`, printing the same result lines.
// Build: g++ -O2 -std=c++17 leveldb_bench.cc -o leveldb_bench -lleveldb -lpthread
// Keys: 8-byte big-endian key number padded with '0' to key_size (RocksDB's db_bench scheme);
// random keys are uniform in [0, num) with repetition.
#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <leveldb/options.h>
#include <leveldb/write_batch.h>

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Config {
  std::vector<std::string> benchmarks{"fillrandom", "readrandom"};
  long num = 1000000, reads = -1, key_size = 16, value_size = 100, bloom_bits = 10;
  long cache_size = 8 << 20, seek_nexts = 0, write_buffer_size = 4 << 20;
  bool sync = false;
  std::string db = "/tmp/leveldb-bench";
};

uint64_t rng_state = 301;
uint64_t NextRandom() {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

std::string Key(const Config& c, uint64_t n) {
  std::string k(c.key_size, '0');
  for (int i = 0; i < 8 && i < c.key_size; i++) k[i] = char((n >> (56 - 8 * i)) & 0xff);
  return k;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Report(const char* name, double secs, long ops, long bytes, const std::string& extra) {
  char rate[64] = "";
  if (bytes > 0) snprintf(rate, sizeof rate, " %6.1f MB/s", bytes / 1048576.0 / secs);
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  printf("%-12s : %11.3f micros/op %ld ops/sec;%s%s\n", name, secs * 1e6 / ops, long(ops / secs), rate,
         extra.c_str());
  printf("             : peak RSS %.1f MB\n", u.ru_maxrss / 1024.0);
  fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos) continue;
    std::string name = a.substr(2, eq - 2), v = a.substr(eq + 1);
    if (name == "benchmarks") {
      c.benchmarks.clear();
      std::stringstream ss(v);
      std::string b;
      while (std::getline(ss, b, ',')) c.benchmarks.push_back(b);
    } else if (name == "num") c.num = atol(v.c_str());
    else if (name == "reads") c.reads = atol(v.c_str());
    else if (name == "key_size") c.key_size = atol(v.c_str());
    else if (name == "value_size") c.value_size = atol(v.c_str());
    else if (name == "bloom_bits") c.bloom_bits = atol(v.c_str());
    else if (name == "cache_size") c.cache_size = atol(v.c_str());
    else if (name == "seek_nexts") c.seek_nexts = atol(v.c_str());
    else if (name == "write_buffer_size") c.write_buffer_size = atol(v.c_str());
    else if (name == "sync") c.sync = v == "1" || v == "true";
    else if (name == "db") c.db = v;
  }
  long reads = c.reads < 0 ? c.num : c.reads;
  std::unique_ptr<leveldb::Cache> cache(leveldb::NewLRUCache(c.cache_size));
  std::unique_ptr<const leveldb::FilterPolicy> filter(
      c.bloom_bits > 0 ? leveldb::NewBloomFilterPolicy(c.bloom_bits) : nullptr);
  leveldb::Options opt;
  opt.create_if_missing = true;
  opt.compression = leveldb::kNoCompression;
  opt.block_cache = cache.get();
  opt.filter_policy = filter.get();
  opt.write_buffer_size = c.write_buffer_size;
  leveldb::WriteOptions wo;
  wo.sync = c.sync;
  leveldb::DB* db = nullptr;
  std::string value_source(1 << 20, 'x');
  for (auto& ch : value_source) ch = char(NextRandom());
  size_t vpos = 0;
  auto value = [&]() {
    if (vpos + c.value_size > value_source.size()) vpos = 0;
    leveldb::Slice s(value_source.data() + vpos, c.value_size);
    vpos += c.value_size;
    return s;
  };
  auto open = [&](bool fresh) {
    delete db;
    db = nullptr;
    if (fresh) leveldb::DestroyDB(c.db, opt);
    leveldb::Status s = leveldb::DB::Open(opt, c.db, &db);
    if (!s.ok()) { fprintf(stderr, "open: %s\n", s.ToString().c_str()); exit(1); }
  };
  for (const auto& b : c.benchmarks) {
    bool fresh = b == "fillseq" || b == "fillrandom";
    if (fresh || db == nullptr) open(fresh);
    long ops = 0, bytes = 0, found = 0;
    std::string extra;
    double start = Now();
    if (b == "fillseq" || b == "fillrandom" || b == "overwrite") {
      for (long i = 0; i < c.num; i++) {
        uint64_t n = b == "fillseq" ? i : NextRandom() % c.num;
        leveldb::Status s = db->Put(wo, Key(c, n), value());
        if (!s.ok()) { fprintf(stderr, "put: %s\n", s.ToString().c_str()); exit(1); }
      }
      ops = c.num;
      bytes = ops * (c.key_size + c.value_size);
    } else if (b == "readrandom") {
      std::string v;
      for (long i = 0; i < reads; i++) {
        std::string k = Key(c, NextRandom() % c.num);
        if (db->Get(leveldb::ReadOptions(), k, &v).ok()) { found++; bytes += k.size() + v.size(); }
      }
      ops = reads;
      extra = " (" + std::to_string(found) + " of " + std::to_string(ops) + " found)";
    } else if (b == "readseq") {
      std::unique_ptr<leveldb::Iterator> it(db->NewIterator(leveldb::ReadOptions()));
      for (it->SeekToFirst(); it->Valid() && ops < reads; it->Next()) {
        ops++;
        bytes += it->key().size() + it->value().size();
      }
    } else if (b == "seekrandom") {
      std::unique_ptr<leveldb::Iterator> it(db->NewIterator(leveldb::ReadOptions()));
      for (long i = 0; i < reads; i++) {
        std::string k = Key(c, NextRandom() % c.num);
        it->Seek(k);
        if (it->Valid() && it->key() == k) found++;
        for (long j = 0; j < c.seek_nexts && it->Valid(); j++) it->Next();
      }
      ops = reads;
      extra = " (" + std::to_string(found) + " of " + std::to_string(ops) + " found)";
    } else {
      fprintf(stderr, "unknown benchmark %s\n", b.c_str());
      continue;
    }
    Report(b.c_str(), Now() - start, ops, bytes, extra);
  }
  delete db;
  return 0;
}
