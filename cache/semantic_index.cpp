#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "cache/inner_product.h"
#include "cache/rw_lock.h"
#include "cache/semantic.h"

namespace cascade {

namespace {

using Graph = hnswlib::HierarchicalNSW<float>;

class InnerProductDistance final : public hnswlib::SpaceInterface<float> {
 public:
  explicit InnerProductDistance(std::size_t dimension)
      : dimension_(dimension), function_(inner_product_distance()) {}
  std::size_t get_data_size() override { return dimension_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return function_; }
  void* get_dist_func_param() override { return &dimension_; }

 private:
  std::size_t dimension_;
  hnswlib::DISTFUNC<float> function_;
};

// Unit vectors only: similarity = 1 - distance is a cosine only then. The
// slack absorbs float rounding of vectors normalized elsewhere.
bool is_unit(std::span<const float> v) {
  double sum = 0;
  for (const float x : v) {
    if (!std::isfinite(x)) return false;
    sum += static_cast<double>(x) * x;
  }
  return std::abs(sum - 1.0) < 1e-3;
}

}  // namespace

// A namespace starts flat (an exact scan over a plain array) and becomes an
// HNSW graph past options.flat_limit entries. hnswlib costs ~2.6 MB per graph
// before its first entry (65,536 per-graph update locks), which a cache keyed
// by tenant and context multiplies by thousands; a scan of 1,024 vectors is
// as fast as the graph search anyway.
struct SemanticIndex::Tenant {
  mutable WriterPreferringLock mutex;
  // Flat stage: row i holds ids[i]'s vector; removal moves the last row in.
  std::vector<float> rows;
  std::vector<std::uint64_t> ids;
  std::unordered_map<std::uint64_t, std::size_t> row_of;
  // Graph stage.
  std::unique_ptr<InnerProductDistance> space;
  std::unique_ptr<Graph> graph;
  std::size_t live = 0;
};

struct SemanticIndex::Tenants {
  mutable WriterPreferringLock mutex;
  std::map<std::string, std::shared_ptr<Tenant>, std::less<>> by_name;
};

SemanticIndex::SemanticIndex(SemanticIndexOptions options)
    : options_(options), tenants_(std::make_unique<Tenants>()) {
  options_.initial_capacity = std::max<std::size_t>(16, options_.initial_capacity);
  options_.M = std::max<std::size_t>(2, options_.M);
}

SemanticIndex::~SemanticIndex() = default;

std::shared_ptr<SemanticIndex::Tenant> SemanticIndex::find(std::string_view tenant) const {
  std::shared_lock lock(tenants_->mutex);
  const auto it = tenants_->by_name.find(tenant);
  return it == tenants_->by_name.end() ? nullptr : it->second;
}

std::shared_ptr<SemanticIndex::Tenant> SemanticIndex::find_or_create(std::string_view tenant) {
  if (auto found = find(tenant)) return found;
  std::unique_lock lock(tenants_->mutex);
  auto& slot = tenants_->by_name[std::string(tenant)];
  if (!slot) slot = std::make_shared<Tenant>();
  return slot;
}

namespace {

// Builds a graph holding the given vectors (row-major) under their ids.
std::unique_ptr<Graph> build_graph(InnerProductDistance& space, const SemanticIndexOptions& o, std::size_t ef,
                                   std::size_t capacity, const float* rows, const std::uint64_t* ids,
                                   std::size_t count) {
  auto graph = std::make_unique<Graph>(&space, std::max(capacity, o.initial_capacity), o.M, o.ef_construction);
  graph->setEf(ef);
  for (std::size_t i = 0; i < count; ++i) graph->addPoint(rows + i * o.dimension, ids[i]);
  return graph;
}

}  // namespace

Result<void> SemanticIndex::add(std::string_view tenant, std::uint64_t entry_id, std::span<const float> vector) {
  if (vector.size() != options_.dimension) {
    return fail(ErrorCode::invalid_request, "vector has dimension " + std::to_string(vector.size()) +
                                                ", the index " + std::to_string(options_.dimension));
  }
  if (!is_unit(vector)) return fail(ErrorCode::invalid_request, "vector is not unit length");
  // hnswlib and the containers report allocation failures by throwing.
  try {
    const std::shared_ptr<Tenant> t = find_or_create(tenant);
    std::unique_lock lock(t->mutex);
    const std::size_t dim = options_.dimension;
    if (!t->graph) {
      if (const auto it = t->row_of.find(entry_id); it != t->row_of.end()) {
        std::copy(vector.begin(), vector.end(), t->rows.begin() + static_cast<std::ptrdiff_t>(it->second * dim));
        return {};
      }
      if (t->ids.size() < options_.flat_limit) {
        t->row_of.emplace(entry_id, t->ids.size());
        t->ids.push_back(entry_id);
        t->rows.insert(t->rows.end(), vector.begin(), vector.end());
        ++t->live;
        return {};
      }
      // Past the flat limit: the namespace becomes a graph, once.
      t->space = std::make_unique<InnerProductDistance>(dim);
      t->graph = build_graph(*t->space, options_, options_.ef_search, t->ids.size() * 2, t->rows.data(),
                             t->ids.data(), t->ids.size());
      std::vector<float>().swap(t->rows);
      std::vector<std::uint64_t>().swap(t->ids);
      std::unordered_map<std::uint64_t, std::size_t>().swap(t->row_of);
    }
    Graph& g = *t->graph;
    const auto existing = g.label_lookup_.find(entry_id);
    if (existing != g.label_lookup_.end()) {
      // addPoint on a known label updates it in place and clears a delete mark.
      if (g.isMarkedDeleted(existing->second)) ++t->live;
    } else {
      if (g.cur_element_count >= g.max_elements_) g.resizeIndex(g.max_elements_ * 2);
      ++t->live;
    }
    g.addPoint(vector.data(), entry_id);
  } catch (const std::exception& e) {
    return fail(ErrorCode::internal, std::string("semantic index: ") + e.what());
  }
  return {};
}

bool SemanticIndex::remove(std::string_view tenant, std::uint64_t entry_id) {
  const auto t = find(tenant);
  if (!t) return false;
  std::unique_lock lock(t->mutex);
  if (!t->graph) {
    const auto it = t->row_of.find(entry_id);
    if (it == t->row_of.end()) return false;
    const std::size_t row = it->second;
    const std::size_t last = t->ids.size() - 1;
    const std::size_t dim = options_.dimension;
    if (row != last) {
      std::copy_n(t->rows.begin() + static_cast<std::ptrdiff_t>(last * dim), dim,
                  t->rows.begin() + static_cast<std::ptrdiff_t>(row * dim));
      t->ids[row] = t->ids[last];
      t->row_of[t->ids[row]] = row;
    }
    t->ids.pop_back();
    t->rows.resize(last * dim);
    t->row_of.erase(it);
    --t->live;
    return true;
  }
  Graph& g = *t->graph;
  const auto it = g.label_lookup_.find(entry_id);
  if (it == g.label_lookup_.end() || g.isMarkedDeleted(it->second)) return false;
  g.markDeletedInternal(it->second);
  --t->live;
  return true;
}

std::vector<Neighbor> SemanticIndex::search(std::string_view tenant, std::span<const float> vector,
                                            std::size_t k) const {
  std::vector<Neighbor> out;
  if (vector.size() != options_.dimension || k == 0) return out;
  const auto t = find(tenant);
  if (!t) return out;
  std::shared_lock lock(t->mutex);
  if (t->live == 0) return out;
  if (!t->graph) {
    const InnerProductKernel distance = inner_product_distance();
    const std::size_t dim = options_.dimension;
    out.reserve(t->ids.size());
    for (std::size_t i = 0; i < t->ids.size(); ++i) {
      out.push_back(Neighbor{t->ids[i], 1.0f - distance(vector.data(), t->rows.data() + i * dim, &dim)});
    }
    const auto by_similarity = [](const Neighbor& a, const Neighbor& b) { return a.similarity > b.similarity; };
    const std::size_t keep = std::min(k, out.size());
    std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(), by_similarity);
    out.resize(keep);
    return out;
  }
  auto queue = t->graph->searchKnn(vector.data(), k);  // farthest on top
  out.resize(queue.size());
  for (std::size_t i = queue.size(); i-- > 0;) {
    out[i] = Neighbor{queue.top().second, 1.0f - queue.top().first};
    queue.pop();
  }
  return out;
}

std::size_t SemanticIndex::size(std::string_view tenant) const {
  const auto t = find(tenant);
  if (!t) return 0;
  std::shared_lock lock(t->mutex);
  return t->live;
}

std::size_t SemanticIndex::deleted(std::string_view tenant) const {
  const auto t = find(tenant);
  if (!t) return 0;
  std::shared_lock lock(t->mutex);
  return t->graph ? t->graph->num_deleted_ : 0;
}

Result<void> SemanticIndex::compact(std::string_view tenant) {
  const auto t = find(tenant);
  if (!t) return {};
  std::unique_lock lock(t->mutex);
  if (!t->graph) return {};  // flat namespaces leave no tombstones
  Graph& old = *t->graph;
  const std::size_t dim = options_.dimension;
  try {
    std::vector<float> rows;
    std::vector<std::uint64_t> ids;
    rows.reserve(t->live * dim);
    ids.reserve(t->live);
    for (hnswlib::tableint id = 0; id < old.cur_element_count; ++id) {
      if (old.isMarkedDeleted(id)) continue;
      const auto* data = reinterpret_cast<const float*>(old.getDataByInternalId(id));
      rows.insert(rows.end(), data, data + dim);
      ids.push_back(old.getExternalLabel(id));
    }
    if (ids.size() <= options_.flat_limit) {
      // Small again: back to the flat stage, which frees the graph's fixed cost.
      t->rows = std::move(rows);
      t->ids = std::move(ids);
      t->row_of.clear();
      for (std::size_t i = 0; i < t->ids.size(); ++i) t->row_of.emplace(t->ids[i], i);
      t->graph.reset();
      t->space.reset();
      return {};
    }
    t->graph = build_graph(*t->space, options_, old.ef_, ids.size() * 2, rows.data(), ids.data(), ids.size());
  } catch (const std::exception& e) {
    return fail(ErrorCode::internal, std::string("semantic index compaction: ") + e.what());
  }
  return {};
}

void SemanticIndex::set_ef_search(std::size_t ef_search) {
  std::vector<std::shared_ptr<Tenant>> all;
  {
    std::unique_lock lock(tenants_->mutex);  // namespaces that become graphs from now on get the new value
    options_.ef_search = ef_search;
    for (const auto& [name, t] : tenants_->by_name) all.push_back(t);
  }
  for (const auto& t : all) {
    std::unique_lock lock(t->mutex);
    if (t->graph) t->graph->setEf(ef_search);
  }
}

const char* SemanticIndex::distance_kernel() { return inner_product_kernel_name(); }

std::size_t SemanticIndex::memory_bytes() const {
  std::vector<std::shared_ptr<Tenant>> all;
  {
    std::shared_lock lock(tenants_->mutex);
    for (const auto& [name, t] : tenants_->by_name) all.push_back(t);
  }
  std::size_t total = 0;
  for (const auto& t : all) {
    std::shared_lock lock(t->mutex);
    total += sizeof(Tenant);
    if (!t->graph) {
      total += t->rows.capacity() * sizeof(float) + t->ids.capacity() * sizeof(std::uint64_t);
      total += t->row_of.size() * (sizeof(std::uint64_t) * 2 + sizeof(void*) * 2) +
               t->row_of.bucket_count() * sizeof(void*);
      continue;
    }
    const Graph& g = *t->graph;
    const std::size_t capacity = g.max_elements_;
    total += capacity * g.size_data_per_element_;                // vectors + bottom-layer links + labels
    total += capacity * (sizeof(void*) + sizeof(int) + sizeof(std::mutex));  // upper-link pointers, levels, locks
    total += capacity * sizeof(hnswlib::vl_type);                 // one visited list
    total += Graph::max_update_element_locks * sizeof(std::mutex);  // fixed per graph
    for (std::size_t i = 0; i < g.cur_element_count; ++i) {
      if (g.element_levels_[i] > 0) total += g.size_links_per_element_ * g.element_levels_[i] + 1;
    }
    // unordered_map node (key, value, next pointer, cached hash) + bucket.
    total += g.label_lookup_.size() * (sizeof(std::uint64_t) * 2 + sizeof(void*) * 2) +
             g.label_lookup_.bucket_count() * sizeof(void*);
  }
  return total;
}

}  // namespace cascade
