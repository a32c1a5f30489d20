#!/usr/bin/env bash
# The deploy/aws scripts' --dry-run output against hand-written AWS CLI calls
# (tests/deploy/expected), and their refusals of bad arguments: exit 2, a message
# naming the problem, and no AWS call at all.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
aws_dir="$here/../../deploy/aws"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export AWS_CLI="$here/aws_recorder" MS_AWS_LOG="$work/calls.log"
unset MS_REAL_AWS
: >"$MS_AWS_LOG"
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

pcr4=$(printf 'A%.0s' $(seq 96))
pcr4_lower=$(printf 'a%.0s' $(seq 96))
pcr7=$(printf '0123456789abcdef%.0s' $(seq 6))
pcr15=$(printf 'f%.0s' $(seq 96))
sha=$(printf '5%.0s' $(seq 64))
token() { printf '%s\n' "$@" | sha256sum | cut -c1-32; }

# expect NAME SCRIPT ARGS...: SCRIPT --dry-run ARGS must print expected/NAME.txt
# (after its @PLACEHOLDERS@ are filled in) and exit 0.
expect() {
  local name="$1" script="$2" out rc=0
  shift 2
  out=$("$aws_dir/$script" "$@" --dry-run 2>"$work/err") || rc=$?
  [ "$rc" = 0 ] || { fail "$name: exit $rc: $(cat "$work/err")"; return; }
  sed -e "s|@PCR4@|$pcr4_lower|" -e "s|@PCR7@|$pcr7|" -e "s|@PCR15@|$pcr15|" \
    -e "s|@TOKEN@|${TOKEN:-}|" -e "s|@USER_DATA@|$work/user-data.yaml|" \
    "$here/expected/$name.txt" >"$work/want"
  printf '%s\n' "$out" >"$work/got"
  diff -u "$work/want" "$work/got" >"$work/diff" || fail "$name: dry run differs:
$(cat "$work/diff")"
  [ ! -s "$work/err" ] || fail "$name: a dry run wrote to stderr: $(cat "$work/err")"
}

expect create-bucket-us-east-2 create-bucket --bucket sealed-models --region us-east-2
expect create-bucket-us-east-1-endpoint create-bucket --region us-east-1 --bucket team.models-1 \
  --endpoint-url http://127.0.0.1:9000
expect create-instance-role-consumer create-instance-role --role-name modelseal-consumer \
  --bucket sealed-models --region us-east-2 --account 111122223333 --ssm
expect create-instance-role-owner create-instance-role --kind owner --role-name modelseal-owner \
  --profile-name publisher --bucket sealed-models --prefix team/llm --region eu-central-1 \
  --account 111122223333 \
  --kms-key-arn arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
expect create-tpm-ami-al2023 create-tpm-ami --arch x86_64 --region us-east-2 --source-region us-west-2
expect create-tpm-ami-debian create-tpm-ami --os debian-12 --arch arm64 --region eu-west-1 \
  --name "modelseal debian arm"
# PCRs given out of order and in upper case: sorted by index, lower-cased.
expect create-kms-key create-kms-key --region us-east-2 \
  --owner-arn arn:aws:iam::111122223333:role/modelseal-owner \
  --instance-role-arn arn:aws:iam::444455556666:role/modelseal-consumer \
  --pcr "15=$pcr15" --pcr "4=$pcr4" --pcr "7=$pcr7" --alias alias/models/llama
TOKEN=$(token modelseal ap-southeast-2 ami-0123456789abcdef0 subnet-0123456789abcdef0) \
  expect launch-instance-plain launch-instance --region ap-southeast-2 \
  --image-id ami-0123456789abcdef0 \
  --instance-profile-arn arn:aws:iam::111122223333:instance-profile/modelseal-consumer \
  --subnet-id subnet-0123456789abcdef0 --security-group-id sg-0123456789abcdef0 \
  --security-group-id sg-12345678 --key-name ops

# The bootstrap: the filled-in user data is YAML whose files decode to the inputs.
url='https://sealed-models.s3.us-east-2.amazonaws.com/packages/modelseal_0.1.0_amd64.deb?X-Amz-Credential=a%2Fb&X-Amz-Signature=0f'
printf '[store]\nurl = s3://sealed-models/models\n# a comment with: "quotes" and |pipes| and @CONFIG_B64@\n' >"$work/modelseal.conf"
TOKEN=$(token "consumer 1" us-east-2 ami-0123456789abcdef0 subnet-0123456789abcdef0) \
  expect launch-instance-bootstrap launch-instance --region us-east-2 \
  --image-id ami-0123456789abcdef0 --instance-type m7i.xlarge --name "consumer 1" \
  --instance-profile-arn arn:aws:iam::111122223333:instance-profile/modelseal-consumer \
  --subnet-id subnet-0123456789abcdef0 --security-group-id sg-0123456789abcdef0 --volume-size 40 \
  --package-url "$url" --package-sha256 "$sha" --config "$work/modelseal.conf" \
  --user-data-out "$work/user-data.yaml"
if ! /usr/bin/python3 - "$work/user-data.yaml" "$work/modelseal.conf" "$url" "$sha" <<'EOF'; then
import base64, sys, yaml
doc_path, conf_path, url, sha = sys.argv[1:]
text = open(doc_path).read()
assert text.startswith("#cloud-config\n"), "no #cloud-config header"
doc = yaml.safe_load(text)
files = {f["path"]: f for f in doc["write_files"]}
conf = files["/etc/modelseal/modelseal.conf"]
assert conf["encoding"] == "b64" and conf["permissions"] == "0640"
assert base64.b64decode(conf["content"]) == open(conf_path, "rb").read(), "config differs"
assert base64.b64decode(files["/var/lib/modelseal-bootstrap/package.url"]["content"]).decode() == url
assert files["/var/lib/modelseal-bootstrap/package.sha256"]["content"].split() == [
    sha, "/var/lib/modelseal-bootstrap/modelseal.deb"]
install = files["/var/lib/modelseal-bootstrap/install"]["content"]
assert "sha256sum --check" in install and "--proto =https" in install
assert install.index("sha256sum --check") < install.index("apt-get install")
assert "systemctl enable --now modelseal.service" in install
assert doc["runcmd"] == [["/var/lib/modelseal-bootstrap/install"]]
assert "@" not in text.split("write_files:")[1].split("install\n")[0].replace("@PACKAGE", ""), "unfilled field"
EOF
  fail "launch-instance: the filled-in user data is wrong"
fi

# The client token is the same for the same launch and differs for another name.
a=$("$aws_dir/launch-instance" --region us-east-2 --image-id ami-0123456789abcdef0 \
  --instance-profile-arn arn:aws:iam::111122223333:instance-profile/p --subnet-id subnet-01234567 \
  --security-group-id sg-01234567 --name one --dry-run | grep -o 'client-token [^ ]*')
b=$("$aws_dir/launch-instance" --region us-east-2 --image-id ami-0123456789abcdef0 \
  --instance-profile-arn arn:aws:iam::111122223333:instance-profile/p --subnet-id subnet-01234567 \
  --security-group-id sg-01234567 --name two --dry-run | grep -o 'client-token [^ ]*')
if [ -z "$a" ] || [ "$a" = "$b" ]; then fail "client tokens of different launches are equal: $a"; fi

# refuse MESSAGE SCRIPT ARGS...: exit 2, MESSAGE on stderr.
refuse() {
  local msg="$1" script="$2" rc=0
  shift 2
  "$aws_dir/$script" "$@" >"$work/out" 2>"$work/err" || rc=$?
  [ "$rc" = 2 ] || fail "$script $*: exit $rc, want 2 ($(cat "$work/err"))"
  grep -qF -- "$msg" "$work/err" || fail "$script $*: stderr '$(cat "$work/err")' lacks '$msg'"
}
role=arn:aws:iam::111122223333:role/consumer
owner=arn:aws:iam::111122223333:role/owner
kms=(--region us-east-2 --owner-arn "$owner" --instance-role-arn "$role")
refuse "missing --bucket" create-bucket --region us-east-2
refuse "missing --region" create-bucket --bucket sealed-models
refuse "--bucket needs a value" create-bucket --bucket
refuse "must be 3 to 63 characters" create-bucket --bucket ab --region us-east-2
refuse "lower-case letters" create-bucket --bucket Sealed-Models --region us-east-2
refuse "adjacent" create-bucket --bucket sealed..models --region us-east-2
refuse "looks like an IP address" create-bucket --bucket 192.168.1.1 --region us-east-2
refuse "not an AWS region" create-bucket --bucket sealed-models --region us-east
refuse "not an AWS region" create-bucket --bucket sealed-models --region 'us-east-2;rm'
refuse "not an http(s) URL" create-bucket --bucket sealed-models --region us-east-2 --endpoint-url 'http://u:p@h?x'
refuse "unknown argument '--bukket'" create-bucket --bukket x
refuse "missing --account" create-instance-role --role-name r --bucket sealed-models --region us-east-2
refuse "12-digit" create-instance-role --role-name r --bucket sealed-models --region us-east-2 --account 1234
refuse "must be consumer or owner" create-instance-role --role-name r --bucket sealed-models --region us-east-2 --account 111122223333 --kind admin
refuse "--prefix" create-instance-role --role-name r --bucket sealed-models --region us-east-2 --account 111122223333 --prefix /models/
refuse "--prefix" create-instance-role --role-name r --bucket sealed-models --region us-east-2 --account 111122223333 --prefix 'a/../b'
refuse "--role-name" create-instance-role --role-name 'bad name' --bucket sealed-models --region us-east-2 --account 111122223333
refuse "not a KMS key ARN" create-instance-role --role-name r --bucket sealed-models --region us-east-2 --account 111122223333 --kms-key-arn arn:aws:kms:us-east-2:111122223333:alias/x
refuse "is not a key of account 111122223333 in us-east-2" create-instance-role --role-name r --bucket sealed-models --region us-east-2 --account 111122223333 --kms-key-arn arn:aws:kms:us-west-2:111122223333:key/abc
refuse "must be x86_64 or arm64" create-tpm-ami --arch amd64 --region us-east-2
refuse "missing --arch" create-tpm-ami --region us-east-2
refuse "must be al2023 or debian-12" create-tpm-ami --arch x86_64 --region us-east-2 --os ubuntu
refuse "--source-region" create-tpm-ami --arch x86_64 --region us-east-2 --source-region mars-1
refuse "missing --pcr" create-kms-key "${kms[@]}"
refuse "no boot PCR" create-kms-key "${kms[@]}" --pcr "15=$pcr15"
refuse "PCRs 8-15 are extended by the operating system" create-kms-key "${kms[@]}" --pcr "8=$pcr15" --pcr "15=$pcr15"
refuse "no boot PCR" create-kms-key "${kms[@]}" --pcr "4=$(printf '0%.0s' $(seq 96))" --pcr "15=$pcr15"
refuse "PCR4 without PCR7 or PCR12" create-kms-key "${kms[@]}" --pcr "4=$pcr4" --pcr "15=$pcr15"
refuse "not a PCR index (0-23)" create-kms-key "${kms[@]}" --pcr "24=$pcr4"
refuse "not a PCR index (0-23)" create-kms-key "${kms[@]}" --pcr "-1=$pcr4"
refuse "not a PCR index (0-23)" create-kms-key "${kms[@]}" --pcr "04=$pcr4"
refuse "96 hex digits" create-kms-key "${kms[@]}" --pcr "7=${pcr4:1}"
refuse "96 hex digits" create-kms-key "${kms[@]}" --pcr "7=${pcr4:1}g"
refuse "must be N=HEX" create-kms-key "${kms[@]}" --pcr "$pcr4"
refuse "--pcr 4 given twice" create-kms-key "${kms[@]}" --pcr "4=$pcr4" --pcr "4=$pcr7"
refuse "not an IAM role ARN" create-kms-key --region us-east-2 --owner-arn "$owner" --instance-role-arn arn:aws:iam::111122223333:user/consumer --pcr "4=$pcr4"
refuse "not an IAM principal ARN" create-kms-key --region us-east-2 --owner-arn '*' --instance-role-arn "$role" --pcr "4=$pcr4"
refuse "must differ" create-kms-key --region us-east-2 --owner-arn "$role" --instance-role-arn "$role" --pcr "4=$pcr4"
refuse "--alias" create-kms-key "${kms[@]}" --pcr "4=$pcr4" --alias alias/aws/s3
refuse "--alias" create-kms-key "${kms[@]}" --pcr "4=$pcr4" --alias models
li=(--region us-east-2 --image-id ami-0123456789abcdef0 --instance-profile-arn arn:aws:iam::111122223333:instance-profile/p
  --subnet-id subnet-01234567 --security-group-id sg-01234567)
refuse "not an AMI id" launch-instance "${li[@]}" --image-id ami-xyz
refuse "not a subnet id" launch-instance "${li[@]}" --subnet-id subnet-1
refuse "not a security group id" launch-instance "${li[@]}" --security-group-id sg-zz
refuse "missing --security-group-id" launch-instance --region us-east-2 --image-id ami-0123456789abcdef0 --instance-profile-arn arn:aws:iam::111122223333:instance-profile/p --subnet-id subnet-01234567
refuse "not an instance profile ARN" launch-instance "${li[@]}" --instance-profile-arn "$role"
refuse "not an instance type" launch-instance "${li[@]}" --instance-type 'g5 2xlarge'
refuse "from 8 to 16384" launch-instance "${li[@]}" --volume-size 4
refuse "missing --package-sha256" launch-instance "${li[@]}" --package-url https://example.com/m.deb --config "$work/modelseal.conf"
refuse "must be an https:// URL" launch-instance "${li[@]}" --package-url http://example.com/m.deb --package-sha256 "$sha" --config "$work/modelseal.conf"
refuse "64 hex digits" launch-instance "${li[@]}" --package-url https://example.com/m.deb --package-sha256 abc --config "$work/modelseal.conf"
refuse "cannot read" launch-instance "${li[@]}" --package-url https://example.com/m.deb --package-sha256 "$sha" --config "$work/none"

# --help: exit 0 with a usage text, for every script.
for s in create-bucket create-instance-role create-tpm-ami create-kms-key launch-instance; do
  out=$("$aws_dir/$s" --help) || fail "$s --help failed"
  grep -q "^Usage: $s " <<<"$out" || fail "$s --help: no usage line"
  grep -q -- "--dry-run" <<<"$out" || fail "$s --help does not mention --dry-run"
done

# Neither the dry runs nor the refusals called AWS.
[ ! -s "$MS_AWS_LOG" ] || fail "AWS was called: $(cat "$MS_AWS_LOG")"

[ "$failures" = 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "deploy dry runs and refusals: ok"
