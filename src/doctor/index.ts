/** doctor/: `portcullis doctor`, the destination checks an operator runs first when agents do not show up. */
export { runDoctor, formatDoctor, type CheckRow, type DoctorOptions, type Step } from './doctor.js';
