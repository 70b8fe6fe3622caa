/** The guest agent client against qemu-ga 7.2 (Debian 12) in the Linux test guest. */
import { agentTests } from './linux-agent.test-support.js';

agentTests({ agentSuite: 'bookworm', version: /^7\.2\./, end: 'guest-shutdown' });
