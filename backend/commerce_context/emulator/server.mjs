// Starts the third-party commercetools emulator (@labdigital/commercetools-mock) on loopback.
// Prints one JSON line {"port": N} once it listens, so the Python side needs no port guessing.
import { CommercetoolsMock } from "@labdigital/commercetools-mock";

const mock = new CommercetoolsMock({
  enableAuthentication: true, // require Bearer tokens, as the real API does
  validateCredentials: true,
  silent: true,
  defaultProjectKey: process.env.CT_PROJECT || "demo-project",
});
await mock.app.listen({ port: Number(process.env.PORT || 0), host: "127.0.0.1" });
const { port } = mock.app.server.address();
console.log(JSON.stringify({ port }));

const stop = async () => {
  await mock.app.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// Started by Python with a pipe on stdin: when the parent dies the pipe closes and we follow.
if (process.env.EXIT_WITH_PARENT === "1") {
  process.stdin.on("end", stop);
  process.stdin.resume();
}
