// The demo's transform: slow, like the seed's (~750 ms), and it says which worker did the work.
// Any ES module with this default export can be a TRANSFORM_MODULE.
const worker = process.env.RESEQ_CONSUMER_NAME ?? String(process.pid);

export default async function transform(message, { signal }) {
  // 650..850 ms of "work": enough spread that transforms finish out of order.
  const ms = 650 + Math.random() * 200;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
  return { ...message.payload, enrichedBy: worker, transformMs: Math.round(ms) };
}
