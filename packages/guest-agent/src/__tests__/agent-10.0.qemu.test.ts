/** The guest agent client against qemu-ga 10.0 (bookworm-backports) in the Linux test guest. */
import { agentTests } from './linux-agent.test-support.js';

agentTests({ agentSuite: 'bookworm-backports', version: /^10\.0\./, end: 'system_powerdown' });
