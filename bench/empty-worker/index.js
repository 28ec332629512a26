// The baseline for `make bench-collector`: a Worker that answers every batch as the
// collector does on success, doing nothing else. Our collector's rate is reported as a
// fraction of this one's, measured in the same run on the same machine.
export default {
  async fetch(request) {
    await request.arrayBuffer();
    return Response.json({ success: true });
  },
};
