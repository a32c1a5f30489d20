// The commands AWS's nitro-tpm-attest (aws/NitroTPM-Tools c598a10) sends, written by
// hand from TPM 2.0 Part 3 and the tool's parameters -- not from modelseal's code:
//
//  * tss/endorsement_key.rs: the first free persistent handle from 0x81000000
//    (GetCapability(TPM_CAP_HANDLES, 0x81000000, 0x01000000)); CreatePrimary in the
//    endorsement hierarchy with tss-esapi's create_ek_public_from_default_template_2
//    (Rsa2048), i.e. TCG EK Credential Profile template L-1; EvictControl; both in
//    execute_with_nullauth_session: an unbound, unsalted HMAC session, SHA-256,
//    AES-128-CFB, attributes decrypt|encrypt (ESAPI adds continueSession and drops
//    decrypt/encrypt for a command without a parameter to encrypt);
//  * tss/message_buffer.rs: the first free NV index from 0x01000000; an HMAC session
//    salted with the persistent EK, SHA-512, AES-128-CFB (context_extension.rs);
//    NV_DefineSpace(owner, 64-byte auth, {index, SHA-512, AUTHWRITE|AUTHREAD, no
//    policy, 8192}); GetCapability(TPM_PROPERTIES, NV_BUFFER_MAX, 4); NV_Write with
//    the index as its own auth handle; NV_ReadPublic for the name;
//  * raw/tpm/mod.rs, raw/auth_session.rs: StartAuthSession(tpmKey = persistent EK,
//    bind = TPM_RH_NULL, 64-byte nonce, encrypted salt, HMAC, TPM_ALG_NULL, SHA-512);
//    the vendor command (index, index, one authorisation with continueSession and a
//    64-byte nonce and HMAC, no parameters); FlushContext;
//  * message_buffer.rs into_response and Drop, endorsement_key.rs Drop: NV_Read in a
//    new salted session; NV_UndefineSpace and EvictControl of the EK, each in its
//    own nullauth session.
// Commands the tool sends on top of these, all read-only (ReadPublic and
// NV_ReadPublic each time its TSS context reopens, a second NV_BUFFER_MAX query),
// are not sent by modelseal; docs/attestation.md lists them.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/tpm/layout.h"
#include "tests/tpm/tap.h"

namespace modelseal::testing {

enum class Ending {
  kVendorRejected,  // the TPM answers the vendor command TPM_RC_COMMAND_CODE
  kVendorAccepted,  // the vendor command succeeds: the index is read back
  kDefineRejected,  // NV_DefineSpace answers TPM_RC_SIZE
};

struct ReferenceRun {
  size_t nv_size;
  size_t request_size;
  size_t buffer_max;  // the TPM's NV_BUFFER_MAX
  Ending ending;
};

struct Step {
  std::string command;
  std::string response;  // empty: not checked
};

inline std::string Hex16(size_t v) {
  char b[24];
  std::snprintf(b, sizeof(b), "%04zx", v);
  return b;
}

inline std::string Zeros(size_t n) {
  return std::string(2 * n, '0');
}

// TCG EK Credential Profile 2.0, B.3.3, template L-1 as a TPM2B_PUBLIC: RSA,
// nameAlg SHA-256, fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|
// restricted|decrypt, policy A (PolicySecret(TPM_RH_ENDORSEMENT)), AES-128-CFB,
// scheme NULL, 2048 bits, exponent 0, unique 256 zero octets.
inline std::string EkTemplateL1() {
  return "013a 0001 000b 000300b2 0020 "
         "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa "
         "0006 0080 0043 0010 0800 00000000 0100 " +
         Zeros(256);
}

inline std::vector<Step> ReferenceSteps(const ReferenceRun& run) {
  const std::string ok = "*2 %size 00000000 ...";
  auto flush = [](const std::string& h) { return Step{"8001 0000000e 00000165 $" + h, ""}; };
  // ESAPI's StartAuthSession: nonceCaller of the hash's size, no salt or a salt.
  auto unsalted = [](const std::string& s) {
    return Step{"8001 0000003f 00000176 40000007 40000007 0020 *32 0000 00 0006 0080 0043 000b",
                "8001 %size 00000000 $" + s + " 0020 *32"};
  };
  auto salted = [](const std::string& s) {
    return Step{"8001 0000015f 00000176 $ek 40000007 0040 *64 0100 *256 00 0006 0080 0043 000d",
                "8001 %size 00000000 $" + s + " 0040 *64"};
  };
  // One authorisation: handle, nonce, attributes, HMAC of the session's hash size.
  auto auth32 = [](const std::string& s, const char* attrs) {
    return "00000049 $" + s + " 0020 *32 " + attrs + " 0020 *32";
  };
  auto auth64 = [](const std::string& s, const char* attrs) {
    return "00000089 $" + s + " 0040 *64 " + attrs + " 0040 *64";
  };
  std::vector<Step> steps;
  // A read-only query modelseal adds: NV_INDEX_MAX.
  steps.push_back({"8001 00000016 0000017a 00000006 00000117 00000001", ok});
  // The EK.
  steps.push_back({"8001 00000016 0000017a 00000001 81000000 01000000", ok});
  steps.push_back(unsalted("s1"));
  steps.push_back({"8002 %size 00000131 4000000b " + auth32("s1", "61") + " 0004 *4 " +
                       EkTemplateL1() + " 0000 00000000",
                   "8002 %size 00000000 $ekt ..."});
  steps.push_back({"8002 %size 00000120 40000001 $ekt " + auth32("s1", "01") + " $ek", ok});
  steps.push_back(flush("s1"));
  // The message buffer.
  steps.push_back({"8001 00000016 0000017a 00000001 01000000 01000000", ok});
  steps.push_back(salted("s2"));
  steps.push_back({"8002 %size 0000012a 40000001 " + auth64("s2", "21") +
                       " 0040 *64 000e $nv 000d " + "00040004 0000 " + Hex16(run.nv_size),
                   run.ending == Ending::kDefineRejected ? "8001 0000000a 000002d5" : ok});
  if (run.ending == Ending::kDefineRejected) {
    steps.push_back(flush("s2"));
    steps.push_back(flush("ekt"));
    steps.push_back(unsalted("s6"));
    steps.push_back({"8002 %size 00000120 40000001 $ek " + auth32("s6", "01") + " $ek", ok});
    steps.push_back(flush("s6"));
    return steps;
  }
  steps.push_back({"8001 00000016 0000017a 00000006 0000012c 00000004", ok});
  for (size_t off = 0; off < run.request_size; off += run.buffer_max) {
    const size_t n = std::min(run.buffer_max, run.request_size - off);
    steps.push_back({"8002 %size 00000137 $nv $nv " + auth64("s2", "21") + " " + Hex16(n) + " *" +
                         std::to_string(n) + " " + Hex16(off),
                     ok});
  }
  steps.push_back({"8002 %size 00000169 $nv " + auth64("s2", "41"), ok});
  steps.push_back(flush("s2"));
  steps.push_back(flush("ekt"));
  // The vendor command.
  steps.push_back({"8001 0000015b 00000176 $ek 40000007 0040 *64 0100 *256 00 0010 000d",
                   "8001 %size 00000000 $s3 0040 *64"});
  steps.push_back({"8002 0000009f 20000001 $nv $nv " + auth64("s3", "01"),
                   run.ending == Ending::kVendorRejected ? "8001 0000000a 00000143"
                                                         : "8001 0000000a 00000000"});
  steps.push_back(flush("s3"));
  if (run.ending == Ending::kVendorAccepted) {
    steps.push_back(salted("s4"));
    for (size_t off = 0; off < run.nv_size; off += run.buffer_max) {
      const size_t n = std::min(run.buffer_max, run.nv_size - off);
      steps.push_back(
          {"8002 %size 0000014e $nv $nv " + auth64("s4", "41") + " " + Hex16(n) + " " + Hex16(off),
           ok});
    }
    steps.push_back(flush("s4"));
  }
  // Removal.
  steps.push_back(unsalted("s5"));
  steps.push_back({"8002 %size 00000122 40000001 $nv " + auth32("s5", "01"), ok});
  steps.push_back(flush("s5"));
  steps.push_back(unsalted("s6"));
  steps.push_back({"8002 %size 00000120 40000001 $ek " + auth32("s6", "01") + " $ek", ok});
  steps.push_back(flush("s6"));
  return steps;
}

// Whether `response` asks for the command again (TPM_RC_RETRY, TPM_RC_YIELDED,
// TPM_RC_TESTING). ESAPI then sends the same bytes again, as it does for
// nitro-tpm-attest.
inline bool AsksForRetry(const Bytes& response) {
  if (response.size() < 10) return false;
  const uint32_t rc = GetU32(response.data() + 6);
  return rc == 0x922 || rc == 0x908 || rc == 0x90a;
}

// Every recorded command (and the responses that carry a handle) against the
// reference, in order; also: the EK and the index took the first free handles.
inline void ExpectReferenceSequence(const std::vector<TapRecord>& records,
                                    const ReferenceRun& run) {
  const auto steps = ReferenceSteps(run);
  std::map<std::string, uint32_t> vars;
  size_t i = 0, step = 0;
  for (; i < records.size() && step < steps.size(); ++i) {
    if (AsksForRetry(records[i].response)) {
      ASSERT_LT(i + 1, records.size()) << "command " << i << " was not sent again";
      ASSERT_EQ(records[i + 1].command, records[i].command) << "the retry of command " << i;
      continue;
    }
    const std::string c = MatchLayout(records[i].command, steps[step].command, vars);
    ASSERT_EQ(c, "") << "command " << i << " (step " << step << "): " << ToHex(records[i].command)
                     << "\n  expected " << steps[step].command;
    if (!steps[step].response.empty()) {
      const std::string r = MatchLayout(records[i].response, steps[step].response, vars);
      ASSERT_EQ(r, "") << "response " << i << " (step " << step
                       << "): " << ToHex(records[i].response);
    }
    ++step;
  }
  ASSERT_EQ(i, records.size()) << "commands beyond the reference";
  ASSERT_EQ(step, steps.size()) << "reference commands not sent";
  EXPECT_EQ(vars["ek"], 0x81000000u) << "the first free persistent handle";
  EXPECT_EQ(vars["nv"], 0x01000000u) << "the first free NV index";
  EXPECT_EQ(vars["ekt"] & 0xff000000u, 0x80000000u) << "a transient handle";
}

}  // namespace modelseal::testing
