// The owner's process list and the redaction of what it and the log view show.
#include "server/procs.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>

namespace modelseal::server {
namespace {

TEST(RedactSecrets, TokensAndSecretValuesAreReplaced) {
  EXPECT_EQ(RedactSecrets("auth ms_owner_AbCdEfGhIjKlMnOpQrStUvWx0123 ok"), "auth [redacted] ok");
  EXPECT_EQ(RedactSecrets("hf token=hf_abc123 next"), "hf [redacted] next");
  EXPECT_EQ(RedactSecrets("Password: hunter2"), "[redacted]");
  EXPECT_EQ(RedactSecrets("tool --db-password hunter2 --port 80"), "tool [redacted] --port 80");
  EXPECT_EQ(RedactSecrets("tool --api-token=abc"), "tool [redacted]");
  // Ordinary lines stay as they are.
  EXPECT_EQ(RedactSecrets("modelseal: job load-1a2b succeeded in 0.41 s"),
            "modelseal: job load-1a2b succeeded in 0.41 s");
  EXPECT_EQ(RedactSecrets("ms_owner_short"), "ms_owner_short");
}

// A child named "a) (b" (a comm with the characters that break a naive /proc/PID/stat
// parser) is listed as ours, with this process as parent.
TEST(ProcessList, ListsOurTreeWithNamesAsTheKernelKeepsThem) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    prctl(PR_SET_NAME, "a) (b", 0, 0, 0);
    const char c = 'x';
    (void)!write(ready[1], &c, 1);
    pause();
    _exit(0);
  }
  close(ready[1]);  // a child that dies before writing ends the read with 0
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  const auto list = ProcessList(getpid(), 5);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(ready[0]);

  const nlohmann::json* self = nullptr;
  const nlohmann::json* kid = nullptr;
  size_t others = 0;
  for (const auto& p : list) {
    if (p["pid"] == getpid()) self = &p;
    if (p["pid"] == child) kid = &p;
    if (!p["modelseal"].get<bool>()) ++others;
  }
  ASSERT_NE(self, nullptr);
  ASSERT_NE(kid, nullptr);
  EXPECT_TRUE((*self)["modelseal"].get<bool>());
  EXPECT_TRUE((*kid)["modelseal"].get<bool>());
  EXPECT_EQ((*kid)["ppid"], getpid());
  EXPECT_EQ((*kid)["name"], "a) (b");
  EXPECT_EQ((*kid)["state"], "S");
  EXPECT_EQ((*self)["ppid"], getppid());
  EXPECT_GT((*self)["rss"].get<uint64_t>(), 1u << 20);
  EXPECT_GE((*self)["threads"].get<int>(), 1);
  EXPECT_NE((*self)["command"].get<std::string>().find("procs_test"), std::string::npos);
  EXPECT_LE(others, 5u);
  // Ours first.
  EXPECT_TRUE(list[0]["modelseal"].get<bool>());
}

}  // namespace
}  // namespace modelseal::server
