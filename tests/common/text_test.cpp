// The ASCII helpers: what changes and what does not.
#include "common/text.h"

#include <gtest/gtest.h>

namespace modelseal {
namespace {

TEST(Text, AsciiLowerChangesOnlyAsciiCapitals) {
  EXPECT_EQ(AsciiLower("Content-Type: X-Amz-Date"), "content-type: x-amz-date");
  EXPECT_EQ(AsciiLower("ABCXYZ@[`{"), "abcxyz@[`{");                // the neighbours of A-Z stay
  EXPECT_EQ(AsciiLower("\xC3\x89t\xC3\xA9"), "\xC3\x89t\xC3\xA9");  // "Été": UTF-8 untouched
  EXPECT_EQ(AsciiLower(""), "");
  for (int c = 0; c < 256; ++c) {  // every byte, against the ASCII table
    const char ch = static_cast<char>(c);
    const bool capital = c >= 'A' && c <= 'Z', small = c >= 'a' && c <= 'z';
    EXPECT_EQ(AsciiLower(ch), capital ? static_cast<char>(c - 'A' + 'a') : ch) << c;
    EXPECT_EQ(AsciiUpper(ch), small ? static_cast<char>(c - 'a' + 'A') : ch) << c;
  }
}

TEST(Text, TrimTakesOffOnlyTheGivenCharactersAtTheEnds) {
  EXPECT_EQ(Trim(" \t a b \r\n"), "a b");
  EXPECT_EQ(Trim("\v\fx\f"), "x");
  EXPECT_EQ(Trim("   "), "");
  EXPECT_EQ(Trim(""), "");
  EXPECT_EQ(Trim(" \tx\t\r", " \t"), "x\t\r");
  EXPECT_EQ(TrimView("  key = v ", " "), "key = v");
}

TEST(Text, HumanBytesUsesBinaryUnits) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(8.5 * 1024 * 1024 * 1024), "8.5 GiB");
  EXPECT_EQ(HumanBytes(3.0 * 1024 * 1024 * 1024 * 1024 * 1024), "3072.0 TiB");
}

}  // namespace
}  // namespace modelseal
