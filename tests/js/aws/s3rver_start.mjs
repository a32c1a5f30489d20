// Starts s3rver on 127.0.0.1 (a free port) over DIRECTORY and prints "PORT <n>".
// Stops on SIGTERM/SIGINT or when stdin closes (the test that started it died).
// Usage: node s3rver_start.mjs DIRECTORY
import S3rver from "s3rver";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: s3rver_start.mjs DIRECTORY");
  process.exit(2);
}
const server = new S3rver({ address: "127.0.0.1", port: 0, directory: dir, silent: !process.env.MODELSEAL_S3RVER_LOG });
const { port } = await server.run();
process.stdout.write(`PORT ${port}\n`);
const stop = async () => {
  await server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
