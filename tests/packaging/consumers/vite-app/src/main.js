import VERTC from 'rtm-sdk';
import * as named from 'rtm-sdk';
import { runInPage } from './probe.js';

document.querySelector('#app').textContent = `rtm-sdk ${VERTC.getSdkVersion()}`;
runInPage(VERTC, named);
