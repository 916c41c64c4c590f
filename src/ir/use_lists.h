// Every node's users, found in one sweep over a program (O(nodes + inputs)), so that a pass
// asking about many nodes stays linear (Program::users scans the whole program per call).
// A snapshot: changing a node's inputs leaves it stale, so build it again after that.
#pragma once

#include <unordered_map>
#include <vector>

#include "ir/node.h"

namespace loom::ir {

class UseLists {
 public:
  explicit UseLists(const Program& program) {
    for (const auto& n : program.nodes()) {
      for (const auto& in : n->inputs) {
        auto& list = users_[in.node];
        // A node reading several outputs (or one twice) is one user.
        if (list.empty() || list.back() != n.get()) list.push_back(n.get());
      }
    }
  }

  // The nodes that read an output of `node`, each once, in program order.
  const std::vector<Node*>& users(const Node* node) const {
    static const std::vector<Node*> none;
    auto it = users_.find(node);
    return it == users_.end() ? none : it->second;
  }

 private:
  std::unordered_map<const Node*, std::vector<Node*>> users_;
};

}  // namespace loom::ir
