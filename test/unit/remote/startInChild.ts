/**
 * Test helper run as a separate Node process: starts the staged run in argv[2] detached, prints
 * its pid, then idles until it is killed (runner.test.ts SIGKILLs it).
 */
import { LocalTransport } from '../../../src/remote/localTransport.js';
import { startDetached } from '../../../src/remote/runner.js';

const pid = await startDetached(new LocalTransport(), process.argv[2]!);
process.stdout.write(`pid=${pid}\n`);
setInterval(() => undefined, 1000);
