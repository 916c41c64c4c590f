// UseLists: every node's users in one sweep, agreeing with Program::users.
#include "ir/use_lists.h"

#include "test_util.h"

namespace loom {
namespace {

TEST(UseLists, AgreeWithProgramUsers) {
  Graph g;
  Tensor x = g.placeholder("x", {4, 6});
  Tensor e = exp(x);
  Tensor twice = x + x;  // one user, though it reads x twice
  auto pieces = split(e, int64_t(2), 1);
  Tensor joined = concat({pieces[0], pieces[1]}, 1);  // reads both outputs of one node
  Tensor y = joined * twice;
  const ir::Program& program = *g.program();
  ir::UseLists uses(program);
  EXPECT_EQ(uses.users(x.node()), (std::vector<ir::Node*>{e.node(), twice.node()}));
  EXPECT_EQ(uses.users(pieces[0].node()), std::vector<ir::Node*>{joined.node()});
  EXPECT_TRUE(uses.users(y.node()).empty());
  for (const auto& n : program.nodes())
    EXPECT_EQ(uses.users(n.get()), program.users(n.get())) << n->op_name();
}

}  // namespace
}  // namespace loom
