// Starts the third-party commercetools emulator (@labdigital/commercetools-mock) on loopback.
// Prints one JSON line {"port": N} once it listens, so the Python side needs no port guessing.
import { CommercetoolsMock } from "@labdigital/commercetools-mock";

const mock = new CommercetoolsMock({
  enableAuthentication: true, // require Bearer tokens, as the real API does
  validateCredentials: true,
  silent: true,
  defaultProjectKey: process.env.CT_PROJECT || "demo-project",
});
// Harness extension, not a commercetools API: set the timestamps that the server keeps and no
// client can set (createdAt, and an import's completedAt, which the emulator drops), so the
// seeded demo can tell a story over weeks instead of one second. Body: {createdAt?,
// completedAt?, deliveriesCreatedAt?, returnsCreatedAt?}. Only seed.py uses it, and only
// against this emulator; versions and lastModifiedAt are left alone.
const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
mock.app.post("/_harness/:projectKey/:typeId/:id/timestamps", async (request, reply) => {
  const { projectKey, typeId, id } = request.params;
  const body = request.body && typeof request.body === "object" ? request.body : {};
  const bad = Object.entries(body).find(([, v]) => typeof v !== "string" || !STAMP.test(v));
  if (bad) {
    return reply.code(400).send({ message: `${bad[0]} must be an ISO-8601 UTC timestamp` });
  }
  const project = mock.project(projectKey);
  const resource = await project.get(typeId, id);
  if (!resource) {
    return reply.code(404).send({ message: `${typeId} ${id} not found` });
  }
  if (body.createdAt) resource.createdAt = body.createdAt;
  if (body.completedAt) resource.completedAt = body.completedAt;
  for (const delivery of resource.shippingInfo?.deliveries || []) {
    if (!body.deliveriesCreatedAt) break;
    delivery.createdAt = body.deliveriesCreatedAt;
    for (const parcel of delivery.parcels || []) parcel.createdAt = body.deliveriesCreatedAt;
  }
  for (const info of resource.returnInfo || []) {
    if (!body.returnsCreatedAt) break;
    for (const item of info.items || []) item.createdAt = body.returnsCreatedAt;
  }
  await project.unsafeAdd(typeId, resource);
  return reply.send(await project.get(typeId, id));
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
